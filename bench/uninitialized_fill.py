"""torch's NaN fill of uninitialised memory against none, measured in one process.

    python -m bench.uninitialized_fill [--threads N] [--student-steps 200] [--shard-steps 30]
                                       [--repeats 3]

Every Trainer here is deterministic, and Lightning then turns on torch's deterministic
algorithms, whose `torch.utils.deterministic.fill_uninitialized_memory` fills every new tensor
with NaN. `stimuli.training.make_trainer` turns that fill off (the numbers stay the same bit for
bit: tests/test_students.py). The two arms run the same work with the fill on and off,
alternated (`bench.arms.alternate`) after one untimed run: a cnn student (`student_defaults`,
the default split's real training windows) for `--student-steps` steps, and one default-size
stimulus shard for `--shard-steps` steps against the experiment's teacher and identity
architectures. Writes `bench/results/uninitialized_fill.json`
(`uninitialized_fill_threads1.json` with `--threads 1`, the audit's jobs' setting).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

import torch

from bench import command
from bench.arms import (
    speedup,
    student_and_shard,
    student_and_shard_parser,
    warm_then_alternate,
)
from stimuli.io import write_json
from stimuli.paths import REPO_ROOT
from stimuli.students.neural import NeuralStudent
from stimuli.training import FILL_ENV


def with_fill(fill: bool, work: Callable[[], object]) -> None:
    """`work` with torch's fill on or off (`make_trainer` reads `FILL_ENV` for each Trainer)."""
    os.environ[FILL_ENV] = "1" if fill else "0"
    work()
    assert torch.utils.deterministic.fill_uninitialized_memory is fill


def compare(work: Callable[[], object], repeats: int) -> dict[str, list[float]]:
    arms = {"fill": partial(with_fill, True, work), "no_fill": partial(with_fill, False, work)}
    return warm_then_alternate(arms, repeats)


def main() -> None:
    parser = student_and_shard_parser()
    args = parser.parse_args()
    work = student_and_shard(args)
    result = {
        "benchmark": "uninitialized_fill",
        "command": command("bench.uninitialized_fill"),
        "threads": torch.get_num_threads(),
        "student": speedup(
            compare(
                lambda: NeuralStudent("cnn", **work.student_settings).fit(work.x, work.y),
                args.repeats,
            ),
            "fill",
            "no_fill",
            steps=args.student_steps,
            windows=len(work.y),
        ),
        "synthesis": speedup(
            compare(lambda: work.shard(work.teacher, work.identity), args.repeats),
            "fill",
            "no_fill",
            shard_size=int(work.cfg.synthesis.shard_size),
            steps=args.shard_steps,
        ),
    }
    name = "uninitialized_fill_threads1.json" if args.threads == 1 else "uninitialized_fill.json"
    write_json(REPO_ROOT / "bench" / "results" / name, result)
    for part in ("student", "synthesis"):
        print(f"{part}: {result[part]['seconds']} -> without the fill {result[part]['speedup']}x")


if __name__ == "__main__":
    main()
