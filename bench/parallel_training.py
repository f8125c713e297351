"""Worker processes against one process, measured in one process (stimuli/parallel.py).

    python -m bench.parallel_training [--students 3] [--student-steps 300] [--shards 2]
                                      [--shard-steps 40] [--repeats 2]

On this shared machine absolute times drift between runs, so each comparison alternates its two
arms inside one process and reports the ratio of their median seconds:
- students: `--students` cnn students (the teacher's architecture, `student_defaults`, the
  real training windows of the default split) fitted one after another with torch's threads
  (`jobs=1`) against side by side in `jobs` one-thread workers (`fit_students(jobs=...)`);
- synthesis: `--shards` shards of the default size synthesized one after another against in
  workers (`run_tasks`), with the experiment's teacher and identity architectures (random weights:
  speed does not depend on them).
Writes `bench/results/parallel_training.json`.
"""

from __future__ import annotations

import argparse
import importlib
from functools import partial

import torch

from bench.arms import alternate, default_experiment, shard_workload, speedup, student_settings
from stimuli.io import write_json
from stimuli.parallel import run_tasks, worker_jobs
from stimuli.paths import REPO_ROOT
from stimuli.students.fit import fit_students
from stimuli.students.neural import NeuralStudent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--student-steps", type=int, default=300)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cfg, dm = default_experiment()
    jobs = worker_jobs(None)
    x, y, _ = dm.datasets["train"].arrays()
    factory = partial(NeuralStudent, "cnn", **student_settings(cfg, args.student_steps))
    factories = {f"cnn{i}": factory for i in range(args.students)}

    def students(n_jobs: int) -> None:
        fit_students(factories, {"real": (x, y, None)}, fs=dm.fs, seed=0, jobs=n_jobs)

    teacher, identity, shard_of = shard_workload(cfg, dm, args.shard_steps)
    size = int(cfg.synthesis.shard_size)
    shard = partial(shard_of, teacher, identity)
    tasks = [partial(shard, i) for i in range(args.shards)]
    warm = [lambda: importlib.import_module("stimuli.students.neural") and None] * jobs
    run_tasks(warm, jobs)  # start the workers before the clock: a job pays this once
    result = {
        "benchmark": "parallel_training",
        "command": "python -m bench.parallel_training",
        "threads": torch.get_num_threads(),
        "jobs": jobs,
        "students": speedup(
            alternate(
                {"in_process": lambda: students(1), "workers": lambda: students(jobs)},
                args.repeats,
            ),
            "in_process",
            "workers",
            n=args.students,
            steps=args.student_steps,
            windows=len(y),
        ),
        "synthesis": speedup(
            alternate(
                {
                    "in_process": lambda: run_tasks(tasks, 1),
                    "workers": lambda: run_tasks(tasks, jobs),
                },
                args.repeats,
            ),
            "in_process",
            "workers",
            shards=args.shards,
            shard_size=size,
            steps=args.shard_steps,
        ),
    }
    write_json(REPO_ROOT / "bench" / "results" / "parallel_training.json", result)
    for part in ("students", "synthesis"):
        print(f"{part}: {result[part]['seconds']} -> workers {result[part]['speedup']}x")


if __name__ == "__main__":
    main()
