"""Independent trainings in worker processes (stimuli/parallel.py): the same numbers as one
thread in process, the loggers fed, the cache honoured."""

from __future__ import annotations

import logging
import shutil
from functools import partial

import numpy as np
import pytest
import torch
from pytorch_lightning.loggers import Logger

from stimuli.console import quiet_lightning
from stimuli.parallel import RecordingLogger, run_tasks, worker_jobs
from stimuli.pipeline import run_pipeline
from stimuli.store import ArtifactStore
from stimuli.students.classical import ClassicalStudent
from stimuli.students.fit import fit_students
from stimuli.students.neural import NeuralStudent
from tests.conftest import TINY_RUN, compose_config
from tests.golden_results import comparable, differences


@pytest.fixture(scope="module")
def tiny() -> tuple[np.ndarray, np.ndarray]:
    """40 windows of 1 x 60 samples; class 1 is shifted up."""
    rng = np.random.default_rng(1)
    y = np.arange(40) % 2
    x = rng.standard_normal((40, 1, 60)) + y[:, None, None]
    return x.astype(np.float32), y.astype(np.int64)


def test_worker_jobs_follows_the_threads_on_a_cpu_and_is_one_on_a_gpu():
    assert worker_jobs(None) == torch.get_num_threads()
    assert worker_jobs(None, {"accelerator": "gpu"}) == 1
    assert worker_jobs(3, {"accelerator": "gpu"}) == 3
    with pytest.raises(ValueError, match="jobs must be a positive number"):
        worker_jobs(0)


def test_a_bad_jobs_value_is_refused_before_anything_runs(tmp_path):
    cfg = compose_config([*TINY_RUN, "jobs=0", "stages=[data]"], tmp_path / "o", tmp_path / "c")
    with pytest.raises(ValueError, match="jobs must be a positive number of processes or null"):
        run_pipeline(cfg)
    assert not (tmp_path / "c").exists()


def test_tasks_run_in_order_in_one_thread_workers():
    tasks = [partial(lambda i: (i, torch.get_num_threads()), i) for i in range(3)]
    assert run_tasks(tasks, 2) == [(0, 1), (1, 1), (2, 1)]
    here = torch.get_num_threads()
    assert run_tasks(tasks, 1) == [(i, here) for i in range(3)]


def test_workers_are_as_quiet_as_the_job():
    lightning = logging.getLogger("pytorch_lightning")
    level = lightning.level
    tasks = [lambda: logging.getLogger("pytorch_lightning").getEffectiveLevel()]
    try:
        lightning.setLevel(logging.INFO)
        assert run_tasks(tasks * 2, 2) == [logging.INFO] * 2
        quiet_lightning()  # quiet=true
        assert run_tasks(tasks * 2, 2) == [logging.WARNING] * 2
    finally:
        lightning.setLevel(level)


class ListLogger(Logger):
    """Keeps what it is given, in this process."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list = []
        self.saved = 0

    name = "list"
    version = 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.rows.append((dict(metrics), step))

    def save(self) -> None:
        self.saved += 1


def test_recording_logger_replays_in_order():
    recorder = RecordingLogger()
    recorder.log_metrics({"loss": torch.tensor(0.5)}, 0)
    recorder.log_metrics({"loss": 0.25, "acc": 1}, 3)
    target = ListLogger()
    recorder.replay([target])
    assert target.rows == [({"loss": 0.5}, 0), ({"loss": 0.25, "acc": 1.0}, 3)]
    assert target.saved == 1
    recorder.replay(False)  # a job without loggers: nothing to do


def test_students_fitted_in_workers_equal_one_thread_fits_here(tiny):
    x, y = tiny
    soft = (np.stack([1 - y, y], 1) * 0.8 + 0.1).astype(np.float32)
    factories = {
        "mlp": partial(NeuralStudent, "mlp", steps=20, batch_size=16, max_shift=2),
        "logreg": partial(ClassicalStudent, "logreg"),
    }
    variants = {"real": (x, y, None), "one": (x, np.zeros_like(y), None), "kd": (x, y, soft)}
    loggers: dict[str, ListLogger] = {}

    def logger_for(name: str) -> ListLogger:
        return loggers.setdefault(name, ListLogger())

    parallel = fit_students(factories, variants, fs=4.0, seed=3, logger_for=logger_for, jobs=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = fit_students(factories, variants, fs=4.0, seed=3)
    finally:
        torch.set_num_threads(threads)
    for name in factories:
        assert "both classes" in parallel[name]["one"]
        for variant in ("real", "kd"):
            np.testing.assert_array_equal(
                parallel[name][variant].predict_proba(x), here[name][variant].predict_proba(x)
            )
    # the mlp's training curves, logged in its worker, reached this job's logger
    steps = [step for metrics, step in loggers["student-mlp-real"].rows if "train/loss" in metrics]
    assert steps and steps == sorted(steps)


def test_students_in_the_cache_are_loaded_not_fitted(tiny):
    x, y = tiny

    class Cache:
        def __init__(self) -> None:
            self.kept: dict = {"logreg/real": ClassicalStudent("logreg").fit(x, y)}
            self.saved: list[str] = []

        def load(self, name, variant):
            return self.kept.get(f"{name}/{variant}")

        def save(self, name, variant, student):
            self.saved.append(f"{name}/{variant}")
            return student

    cache = Cache()
    out = fit_students(
        {"logreg": partial(ClassicalStudent, "logreg")},
        {"real": (x, y, None), "stimuli": (x, 1 - y, None)},
        fs=4.0,
        seed=0,
        cache=cache,
        jobs=2,
    )
    assert out["logreg"]["real"] is cache.kept["logreg/real"]
    assert cache.saved == ["logreg/stimuli"]


def test_store_finds_only_finished_undamaged_entries(tmp_path):
    store = ArtifactStore(tmp_path)
    assert store.find("students", "k") is None
    entry = store.entry("students", "k", lambda folder: (folder / "a.txt").write_text("1") and {})
    found = store.find("students", "k")
    assert found is not None and found.path == entry.path and not found.built
    (entry.path / "a.txt").write_text("2")  # damaged: never loaded
    assert store.find("students", "k") is None


def test_tiny_run_with_two_jobs_gives_the_one_thread_numbers(tiny_run, tmp_path):
    """Label teachers, stimulus shards and students trained in two worker processes give exactly
    the shared run's numbers (one thread, in process); its data, teacher and identity model
    are reused."""
    cache = tmp_path / "cache"
    shutil.copytree(tiny_run.cache, cache)
    for stage in ("stimuli", "stimuli_shards", "label_teachers", "students"):
        shutil.rmtree(cache / "stages" / stage)
    stages = "stages=[teacher,synthesize,students,evaluate]"
    results = run_pipeline(compose_config([*TINY_RUN, "jobs=2", stages], tmp_path / "o", cache))
    assert results["cache"]["stimuli"] == "synthesized"
    assert results["cache"]["label_teachers"] == "trained"
    for block in ("stimuli", "soft_labels", "students"):
        assert differences(comparable(results[block]), comparable(tiny_run.results[block])) == []
