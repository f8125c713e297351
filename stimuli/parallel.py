"""Independent trainings in worker processes: the students and the stimulus shards of a job.

On a CPU, `jobs` processes of one thread each can do more work than one process with `jobs`
threads where a network uses the extra threads poorly. Measured in one process on this
project's 2-core machine (`bench/parallel_training.py`): two stimulus shards synthesize 1.30x
faster in two workers, while three cnn students alone fit 0.79x as fast (three fits on two
workers take two one-thread fits), so the students gain only where small fits fill a worker.
`run_tasks` runs independent tasks that way through joblib's loky workers (reused between
calls); with one job it runs them here, in order.

A task run in a worker computes with one thread, so its numbers are those of a run with
`threads=1`, whichever task ran beside it: the seed and the thread count still fix every number.
Tasks are pickled with cloudpickle, so closures work; joblib hands large arrays to the workers
through memory-mapped temporary files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from joblib import Parallel, delayed
from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities import rank_zero_only

from stimuli.console import apply_terminal_settings, terminal_settings

T = TypeVar("T")


def worker_jobs(jobs: int | None, trainer: Mapping[str, Any] | None = None) -> int:
    """How many trainings run at once: `jobs`, or with None one per torch thread on a CPU and
    one on an accelerator (a GPU is shared better by one process)."""
    if jobs is not None:
        if int(jobs) < 1:
            raise ValueError(f"jobs must be a positive number of processes or null, got {jobs}")
        return int(jobs)
    accelerator = str((trainer or {}).get("accelerator", "cpu"))
    return torch.get_num_threads() if accelerator == "cpu" else 1


def _in_worker(task: Callable[[], T], terminal: dict[str, Any]) -> T:
    torch.set_num_threads(1)
    apply_terminal_settings(terminal)  # `quiet=true` and the silenced library noise hold here too
    return task()


def run_tasks(tasks: Sequence[Callable[[], T]], jobs: int) -> list[T]:
    """`[task() for task in tasks]`, in `min(jobs, len(tasks))` worker processes of one thread
    each when that is more than one."""
    n = min(int(jobs), len(tasks))
    if n <= 1:
        return [task() for task in tasks]
    terminal = terminal_settings()
    return list(Parallel(n_jobs=n, backend="loky")(delayed(_in_worker)(t, terminal) for t in tasks))


class RecordingLogger(Logger):
    """A Lightning logger that keeps the metrics a worker's Trainer logs, so the job's own
    loggers (a W&B run, CSV files) can `replay` them: a worker cannot write into the job's
    W&B run."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[dict[str, float], int | None]] = []

    @property
    def name(self) -> str:
        return "recorded"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        del params, args, kwargs  # the job's config is logged by the job itself

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.rows.append(({k: float(v) for k, v in metrics.items()}, step))

    def replay(self, loggers: Sequence[Logger] | Logger | bool) -> None:
        """Log the recorded metrics, in order, into `loggers` (a Trainer's `logger` value)."""
        if isinstance(loggers, bool):
            return
        for logger in [loggers] if isinstance(loggers, Logger) else loggers:
            for metrics, step in self.rows:
                logger.log_metrics(metrics, step)
            logger.save()
