"""glibc's default malloc against `stimuli.allocator.keep_freed_memory`, arms alternated.

    python -m bench.allocator [--threads 1] [--repeats 3] [--shard-steps 30]
                              [--student-steps 150]

The allocator setting belongs to a process (it is applied when `stimuli` is imported), so each
arm is a fresh worker process, `STIMULI_KEEP_FREED_MEMORY=0` (glibc's defaults) or `1`, started
in turn `--repeats` times (ABAB...). A worker times, after one untimed shard of 3 steps:
- one default-size stimulus shard of `--shard-steps` steps (the experiment's teacher and
  identity architectures, `bench.arms.shard_workload`);
- one cnn student fitted for `--student-steps` steps on the default split's real training
  windows (`student_defaults`);
and reports its peak resident memory. Both arms compute the same numbers (the allocator decides
only where freed memory goes), so only time and memory differ. Reports the speed-ups (medians)
and writes `bench/results/allocator.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from bench import command
from stimuli.io import write_json
from stimuli.paths import REPO_ROOT

ARMS = {"glibc_default": "0", "kept": "1"}


def worker(args: argparse.Namespace) -> None:
    """One arm's timings, printed as JSON on the last line of stdout."""
    from bench.arms import default_experiment, shard_workload, student_settings
    from stimuli.students.neural import NeuralStudent

    cfg, dm = default_experiment(args.threads)
    teacher, identity, shard = shard_workload(cfg, dm, 3)
    shard(teacher, identity)  # untimed: first-call costs
    _, _, shard = shard_workload(cfg, dm, args.shard_steps)
    t = time.perf_counter()
    shard(teacher, identity)
    shard_seconds = time.perf_counter() - t
    x, y, _ = dm.datasets["train"].arrays()
    t = time.perf_counter()
    NeuralStudent("cnn", **student_settings(cfg, args.student_steps)).fit(x, y)
    student_seconds = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = {"shard": round(shard_seconds, 2), "student": round(student_seconds, 2)}
    print(json.dumps({**times, "peak_rss_mib": round(peak_mib)}))


def run_arm(keep: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "bench.allocator", "--worker", "--threads", str(args.threads)]
    command += ["--shard-steps", str(args.shard_steps), "--student-steps", str(args.student_steps)]
    env = {**os.environ, "STIMULI_KEEP_FREED_MEMORY": keep}
    out = subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-steps", type=int, default=30)
    parser.add_argument("--student-steps", type=int, default=150)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    runs: dict[str, list[dict]] = {name: [] for name in ARMS}
    for _ in range(args.repeats):
        for name, keep in ARMS.items():
            runs[name].append(run_arm(keep, args))

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    result = {
        "benchmark": "allocator",
        "command": command("bench.allocator"),
        "threads": args.threads,
        "shard_steps": args.shard_steps,
        "student_steps": args.student_steps,
        "runs": runs,
        "shard_speedup": round(median("glibc_default", "shard") / median("kept", "shard"), 3),
        "student_speedup": round(median("glibc_default", "student") / median("kept", "student"), 3),
        "peak_rss_ratio": round(
            median("kept", "peak_rss_mib") / median("glibc_default", "peak_rss_mib"), 3
        ),
    }
    write_json(REPO_ROOT / "bench" / "results" / "allocator.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))


if __name__ == "__main__":
    main()
