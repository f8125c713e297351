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
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from omegaconf import OmegaConf

from stimuli.config import compose_config
from stimuli.io import write_json
from stimuli.models import build_network
from stimuli.parallel import run_tasks, worker_jobs
from stimuli.paths import REPO_ROOT
from stimuli.pipeline.build_stages import build_datamodule
from stimuli.students.fit import fit_students
from stimuli.students.neural import NeuralStudent
from stimuli.synthesis import synthesize


def alternate(arms: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each arm, the arms run in turn `repeats` times."""
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            t = time.perf_counter()
            arm()
            seconds[name].append(round(time.perf_counter() - t, 2))
    return seconds


def comparison(seconds: dict[str, list[float]], **facts: object) -> dict:
    one, workers = (statistics.median(seconds[k]) for k in ("in_process", "workers"))
    return {**facts, "seconds": seconds, "speedup": round(one / workers, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--student-steps", type=int, default=300)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--shard-steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cfg = compose_config(["+experiment=apnea_cnn", "quiet=true", "paths.output_dir=."])
    jobs = worker_jobs(None)
    dm = build_datamodule(cfg, progress=False)
    x, y, _ = dm.datasets["train"].arrays()
    defaults = OmegaConf.to_container(cfg.student_defaults, resolve=True)
    defaults.pop("mixup", None)
    defaults.update(steps=args.student_steps)
    factory = partial(NeuralStudent, "cnn", **defaults)
    factories = {f"cnn{i}": factory for i in range(args.students)}

    def students(n_jobs: int) -> None:
        fit_students(factories, {"real": (x, y, None)}, fs=dm.fs, seed=0, jobs=n_jobs)

    torch.manual_seed(0)
    teacher = build_network(cfg.model, dm.n_chans, 2, dm.n_times).eval().requires_grad_(False)
    identity = build_network(cfg.identity.model, dm.n_chans, 14, dm.n_times)
    identity = identity.eval().requires_grad_(False)
    synth = OmegaConf.to_container(cfg.synthesis, resolve=True)
    size = int(synth["shard_size"])
    synth.update(n=size, steps=args.shard_steps, progress_bar=False)

    def shard(seed: int) -> None:
        synthesize(
            teacher,
            n_chans=dm.n_chans,
            n_times=dm.n_times,
            n_classes=2,
            cfg=synth,
            identity_model=identity,
            seed=seed,
        )

    tasks = [partial(shard, i) for i in range(args.shards)]
    warm = [lambda: importlib.import_module("stimuli.students.neural") and None] * jobs
    run_tasks(warm, jobs)  # start the workers before the clock: a job pays this once
    result = {
        "benchmark": "parallel_training",
        "command": "python -m bench.parallel_training",
        "threads": torch.get_num_threads(),
        "jobs": jobs,
        "students": comparison(
            alternate(
                {"in_process": lambda: students(1), "workers": lambda: students(jobs)},
                args.repeats,
            ),
            n=args.students,
            steps=args.student_steps,
            windows=len(y),
        ),
        "synthesis": comparison(
            alternate(
                {
                    "in_process": lambda: run_tasks(tasks, 1),
                    "workers": lambda: run_tasks(tasks, jobs),
                },
                args.repeats,
            ),
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
