"""Synthesis throughput against its bound: the forward+backward of every network its loss uses.

    python -m bench.synthesis_throughput [--batch 256] [--steps 200] [--short 20] [--experiment E]

Builds the experiment's teacher architecture (random weights: speed does not depend on them) at
the experiment's input shape, then measures in one process:
- bound: input-steps/s of a plain forward + backward with respect to a `(batch, C, T)` input,
  through the teacher alone (`ratio`) and through the teacher and the identity model, which
  identity inhibition also differentiates (`ratio_to_bound`). The input is what synthesis
  starts from: white noise through the configured smoothing, at unit variance. The speed of
  the CNN's max pooling depends on its input (a max with indices over smooth series is about
  twice as fast on CPU as over white noise: branch prediction), so the bound on raw white noise
  is reported beside it (`*_white_noise`) but is not the one synthesis runs into;
- synthesis: stimulus-steps/s of `stimuli.synthesis.synthesize` on one shard of `batch` stimuli
  with the experiment's synthesis config (identity inhibition included, with an identity model of
  the configured architecture), for the whole shard of `steps` steps (the pipeline's shard: its
  Lightning setup, final teacher pass and copies included) and per step (`marginal`: the extra
  seconds of `steps` over `short` steps, the same setup paid by both);
- the same synthesis with `smoothing` 0, for the cost of the low-pass parametrization.
Synthesis runs without its progress bar, as `quiet=true` runs (audits, sweeps) do.
`--steps` defaults to the experiment's `synthesis.steps` (the default shard). Reports the ratios
and writes `bench/results/synthesis_throughput.json`.
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from bench import command, machine
from stimuli.config import compose_config
from stimuli.io import write_json
from stimuli.models import build_network
from stimuli.paths import REPO_ROOT
from stimuli.synthesis import synthesize
from stimuli.synthesis.parametrization import GaussianSmoothing

SHAPES = {"apnea_cnn": (1, 1200), "apnea_resp": (4, 60), "apnea_rri_closed": (1, 240)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", default="apnea_cnn", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="default: synthesis.steps")
    parser.add_argument("--short", type=int, default=20, help="steps of the marginal's base")
    args = parser.parse_args()
    cfg = compose_config([f"+experiment={args.experiment}", "paths.output_dir=."])
    args.steps = int(cfg.synthesis.steps) if args.steps is None else args.steps
    if not 0 < args.short < args.steps:
        parser.error(f"--short must be in 1..{args.steps - 1}")
    n_chans, n_times = SHAPES[args.experiment]
    torch.manual_seed(0)
    teacher = build_network(cfg.model, n_chans, 2, n_times).eval().requires_grad_(False)
    identity = build_network(cfg.identity.model, n_chans, 14, n_times).eval().requires_grad_(False)

    white = torch.randn(args.batch, n_chans, n_times)
    smoothing = GaussianSmoothing(float(cfg.synthesis.smoothing))
    with torch.no_grad():
        starting = smoothing(white / smoothing.gain)  # unit variance, like synthesis's start

    def fwd_bwd_steps_per_s(*models: torch.nn.Module, inputs: torch.Tensor = starting) -> float:
        """Input-steps/s of one forward through each of `models` and one backward to `inputs`."""
        x = inputs.clone().requires_grad_(True)

        def step() -> None:
            x.grad = None
            sum(m(x).logsumexp(1).sum() for m in models).backward()

        for _ in range(3):  # warm-up
            step()
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.batch * args.steps / (time.perf_counter() - t)

    bound = fwd_bwd_steps_per_s(teacher)
    bound_both = fwd_bwd_steps_per_s(teacher, identity)  # identity inhibition is on by default
    white_bound = fwd_bwd_steps_per_s(teacher, inputs=white)
    white_bound_both = fwd_bwd_steps_per_s(teacher, identity, inputs=white)

    synth_cfg = OmegaConf.to_container(cfg.synthesis, resolve=True)
    synth_cfg.update(n=args.batch, shard_size=args.batch, progress_bar=False)

    def shard_seconds(smoothing: float, steps: int) -> float:
        out = synthesize(
            teacher,
            n_chans=n_chans,
            n_times=n_times,
            n_classes=2,
            cfg={**synth_cfg, "smoothing": smoothing, "steps": steps},
            identity_model=identity,
            seed=0,
        )
        return out["seconds"]

    def rates(smoothing: float) -> tuple[float, float]:
        """(whole shard, marginal) stimulus-steps/s."""
        whole, short = shard_seconds(smoothing, args.steps), shard_seconds(smoothing, args.short)
        return args.batch * args.steps / whole, args.batch * (args.steps - args.short) / max(
            whole - short, 1e-9
        )

    synth, marginal = rates(synth_cfg["smoothing"])
    unsmoothed, unsmoothed_marginal = rates(0.0)
    result = {
        "experiment": args.experiment,
        "command": command("bench.synthesis_throughput"),
        "input": [args.batch, n_chans, n_times],
        "steps": args.steps,
        "short": args.short,
        "threads": torch.get_num_threads(),
        "teacher_fwd_bwd_input_steps_per_s": round(bound, 1),
        "teacher_and_identity_fwd_bwd_input_steps_per_s": round(bound_both, 1),
        "bound_input": "white noise through the smoothing, unit variance (synthesis's start)",
        "teacher_fwd_bwd_input_steps_per_s_white_noise": round(white_bound, 1),
        "teacher_and_identity_fwd_bwd_input_steps_per_s_white_noise": round(white_bound_both, 1),
        "ratio_to_bound_white_noise": round(synth / white_bound_both, 3),
        "synthesis_stimulus_steps_per_s": round(synth, 1),
        "ratio": round(synth / bound, 3),
        "ratio_to_bound": round(synth / bound_both, 3),
        "synthesis_marginal_stimulus_steps_per_s": round(marginal, 1),
        "marginal_ratio_to_bound": round(marginal / bound_both, 3),
        "target_ratio_to_bound": 0.8,
        "smoothing": synth_cfg["smoothing"],
        "synthesis_without_smoothing_stimulus_steps_per_s": round(unsmoothed, 1),
        "synthesis_without_smoothing_marginal_stimulus_steps_per_s": round(unsmoothed_marginal, 1),
        "smoothing_speed_ratio": round(synth / unsmoothed, 3),
        "machine": machine(),
    }
    write_json(REPO_ROOT / "bench" / "results" / "synthesis_throughput.json", result)
    print(result)


if __name__ == "__main__":
    main()
