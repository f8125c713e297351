"""BatchNorm-matching moments, `torch.var_mean` against `channel_moments`, in one process.

    python -m bench.bn_moments [--threads N] [--shard-steps 30] [--repeats 3]

Synthesis matches the batch moments of every teacher BatchNorm layer's input
(`stimuli.synthesis.hooks.BatchNormStatHook`); `stimuli.synthesis.moments.channel_moments`
computes them with a backward of its own instead of `torch.var_mean`'s. Alternates one
default-size shard (`--shard-steps` steps, the experiment's teacher and identity architectures)
with each, after one untimed run of each (`bench.arms`), at `--threads` torch threads (default
torch's; the audit's jobs run with 1). The two arms agree to float32 rounding, not bit for bit:
the stimuli's largest difference is reported with the speed-up. Writes
`bench/results/bn_moments.json`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from unittest import mock

import torch

from bench import command, machine
from bench.arms import alternate, default_experiment, shard_workload, speedup
from stimuli.io import write_json
from stimuli.paths import REPO_ROOT


def var_mean_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The moments as the hook computed them before: `torch.var_mean` and its autograd."""
    var, mean = torch.var_mean(x, dim=[d for d in range(x.dim()) if d != 1], unbiased=False)
    return mean, var


def with_var_mean(run: Callable[[], dict]) -> Callable[[], dict]:
    def arm() -> dict:
        with mock.patch("stimuli.synthesis.hooks.channel_moments", var_mean_moments):
            return run()

    return arm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shard-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    cfg, dm = default_experiment(args.threads)
    teacher, identity, shard = shard_workload(cfg, dm, args.shard_steps)

    def run() -> dict:
        return shard(teacher, identity)

    arms = {"var_mean": with_var_mean(run), "channel_moments": run}
    first = {name: arm()["x"] for name, arm in arms.items()}  # untimed; their stimuli compared
    result = {
        "benchmark": "bn_moments",
        "command": command("bench.bn_moments"),
        "threads": torch.get_num_threads(),
        "synthesis": speedup(
            alternate(arms, args.repeats),
            "var_mean",
            "channel_moments",
            shard_size=int(cfg.synthesis.shard_size),
            steps=args.shard_steps,
            stimuli_max_abs_difference=float(
                (first["var_mean"] - first["channel_moments"]).abs().max()
            ),
        ),
        "machine": machine(),
    }
    write_json(REPO_ROOT / "bench" / "results" / "bn_moments.json", result)
    block = result["synthesis"]
    print(f"synthesis: {block['seconds']} -> channel_moments {block['speedup']}x")
    print(f"stimuli differ by at most {block['stimuli_max_abs_difference']:.2e}")


if __name__ == "__main__":
    main()
