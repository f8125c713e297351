"""The CNN's block order against the textbook one, measured in one process (stimuli/models/cnn.py).

    python -m bench.cnn_block [--threads N] [--student-steps 200] [--shard-steps 30]
                              [--repeats 3]

`CNN` pools before its ReLU with `GroupMax1d`, a max over groups of samples taken by
elementwise maxima; the textbook block is Conv → BN → ReLU → MaxPool1d, and `max_indices` is
`GroupMax1d` as it was first written, with torch's max-with-indices over each group. All three
give the same numbers bit for bit (tests/test_models.py), so only time differs. Each comparison
alternates its arms inside one process (`bench.arms.alternate`) after one untimed run of each
(start-up costs), and reports the ratio of their median seconds, with `--threads` torch threads
(default torch's; the audit's jobs run with 1):
- student: a cnn student (`student_defaults`, the default split's real training windows) fitted
  for `--student-steps` steps;
- synthesis: one shard of the default size synthesized for `--shard-steps` steps against the
  experiment's teacher and identity architectures (random weights: speed does not depend on
  them), both networks in one order or the other.
Writes `bench/results/cnn_block.json` (`cnn_block_threads1.json` with `--threads 1`).
"""

from __future__ import annotations

import copy
from functools import partial

import torch
from torch import nn

from bench import command
from bench.arms import (
    speedup,
    student_and_shard,
    student_and_shard_parser,
    warm_then_alternate,
)
from stimuli.io import write_json
from stimuli.models import build_model
from stimuli.models.cnn import GroupMax1d
from stimuli.paths import REPO_ROOT
from stimuli.students.neural import NeuralStudent


class MaxIndicesGroupMax1d(GroupMax1d):
    """`GroupMax1d` with torch's max-with-indices over each group (its first implementation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        usable = x.shape[-1] // k * k
        return x[..., :usable].unflatten(-1, (-1, k)).max(dim=-1).values


def max_indices_blocks(model: nn.Module) -> nn.Module:
    """A copy of a `CNN` whose group maxima use torch's max-with-indices (same parameters)."""
    model = copy.deepcopy(model)
    for i, layer in enumerate(model.features):
        if isinstance(layer, GroupMax1d):
            model.features[i] = MaxIndicesGroupMax1d(layer.kernel_size)
    return model


def max_indices_cnn(**kwargs) -> nn.Module:
    """The registered cnn with max-with-indices group maxima (a factory for `NeuralStudent`)."""
    return max_indices_blocks(build_model("cnn", **kwargs))


def textbook_blocks(model: nn.Module) -> nn.Module:
    """A copy of a `CNN` whose blocks run Conv → BN → ReLU → MaxPool1d (same parameters)."""
    model = copy.deepcopy(model)
    layers: list[nn.Module] = []
    pool: nn.Module | None = None
    for layer in model.features:
        if isinstance(layer, GroupMax1d):
            pool = nn.MaxPool1d(layer.kernel_size)
        elif isinstance(layer, nn.ReLU):
            layers += [nn.ReLU(inplace=True)] + ([pool] if pool is not None else [])
            pool = None
        else:
            layers.append(layer)
    model.features = nn.Sequential(*layers)
    return model


def textbook_cnn(**kwargs) -> nn.Module:
    """The registered cnn with textbook blocks (a network factory for `NeuralStudent`)."""
    return textbook_blocks(build_model("cnn", **kwargs))


def main() -> None:
    parser = student_and_shard_parser()
    args = parser.parse_args()
    work = student_and_shard(args)
    cfg, y, teacher, identity, shard = work.cfg, work.y, work.teacher, work.identity, work.shard

    def student(model) -> None:
        NeuralStudent(model, **work.student_settings).fit(work.x, work.y)

    nets = {
        "textbook": (textbook_blocks(teacher), textbook_blocks(identity)),
        "max_indices": (max_indices_blocks(teacher), max_indices_blocks(identity)),
        "group_max": (teacher, identity),
    }
    factories = {"textbook": textbook_cnn, "max_indices": max_indices_cnn, "group_max": "cnn"}
    student_seconds = warm_then_alternate(
        {arm: partial(student, factory) for arm, factory in factories.items()}, args.repeats
    )
    shard_seconds = warm_then_alternate(
        {arm: partial(shard, *pair) for arm, pair in nets.items()}, args.repeats
    )
    result = {
        "benchmark": "cnn_block",
        "command": command("bench.cnn_block"),
        "threads": torch.get_num_threads(),
        "student": {
            **speedup(student_seconds, "textbook", "group_max", steps=args.student_steps),
            "windows": len(y),
            "speedup_over_max_indices": speedup(student_seconds, "max_indices", "group_max")[
                "speedup"
            ],
        },
        "synthesis": {
            **speedup(shard_seconds, "textbook", "group_max", steps=args.shard_steps),
            "shard_size": int(cfg.synthesis.shard_size),
            "speedup_over_max_indices": speedup(shard_seconds, "max_indices", "group_max")[
                "speedup"
            ],
        },
    }
    name = "cnn_block_threads1.json" if args.threads == 1 else "cnn_block.json"
    write_json(REPO_ROOT / "bench" / "results" / name, result)
    for part in ("student", "synthesis"):
        print(
            f"{part}: {result[part]['seconds']} -> group max {result[part]['speedup']}x textbook,"
            f" {result[part]['speedup_over_max_indices']}x max-with-indices"
        )


if __name__ == "__main__":
    main()
