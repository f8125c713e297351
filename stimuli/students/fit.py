"""Fitting and scoring students: the one loop the pipeline, the third party and experiments use.

`student_factories(cfg.students)` builds one factory per `conf/student` node; `fit_students`
trains each of them on every variant of the training data (`real` windows, `stimuli`, the
stimuli with soft labels `stimuli_kd`, ...), and `score_students` scores them on held-out
windows, with the `gap` of each stimuli variant to `real` (`gap`, `gap_kd`).

Students are fitted name by name and, for each, variant by variant in the mapping's order, each
from a fresh factory call with the same `seed`, so a student's numbers never depend on which
other students or variants ran, or ran beside it in another process (`jobs`). A variant a
student cannot learn from (`ValueError`, e.g. the teacher gave every stimulus one class) is kept
as its error message instead of the student.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from hydra.utils import instantiate

from stimuli.data.datasets import WindowView
from stimuli.metrics import GAP_METRICS, score
from stimuli.parallel import RecordingLogger, run_tasks
from stimuli.students.base import Student

log = logging.getLogger(__name__)

# variant name -> (windows, hard labels, soft labels or None)
Variants = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]
StudentFactory = Callable[..., Student]


class StudentCache(Protocol):
    """Where fitted students are kept between runs (the pipeline's store:
    `stimuli.pipeline.assess_stages.StoredStudents`)."""

    def load(self, name: str, variant: str) -> Student | None:
        """The student `name` fitted on `variant` before, or None."""

    def save(self, name: str, variant: str, student: Student) -> Student:
        """Keep `student`; returns it as a later `load` will (e.g. read back from disk)."""


# name -> variant -> the fitted student, or the error message of one that could not be trained
Students = dict[str, dict[str, Student | str]]


def student_factories(students_cfg: Mapping[str, Any] | None) -> dict[str, StudentFactory]:
    """One factory per node of `cfg.students` (name -> Hydra partial of a `Student`)."""
    factories = {}
    for name, node in (students_cfg or {}).items():
        factory = instantiate(node)
        if isinstance(factory, Student) or not callable(factory):
            raise TypeError(
                f"students.{name}: expected a partial config (`_partial_: true`) of a Student "
                f"class, got {type(factory).__qualname__}"
            )
        factories[str(name)] = factory
    return factories


def fit_students(
    factories: Mapping[str, StudentFactory],
    variants: Variants,
    *,
    fs: float,
    seed: int,
    progress: bool = False,
    logger_for: Callable[[str], Any] = lambda name: False,
    save_dir: Path | None = None,
    cache: StudentCache | None = None,
    jobs: int = 1,
) -> Students:
    """Each student (outer loop) fitted on each variant (inner loop): `factory(fs=fs, seed=seed,
    progress=progress, logger=logger_for("student-NAME-VARIANT")).fit(x, y, soft=soft)`.

    With `cache`, a student it holds is loaded instead and every one fitted is given to it; with
    `save_dir`, each fitted student is saved as `save_dir/NAME-VARIANT.joblib`. With `jobs` > 1
    the fits run in that many worker processes of one thread each (`stimuli.parallel`): their
    Lightning metrics are recorded there and replayed into the job's loggers, and no progress
    bars are drawn."""
    if save_dir is not None:
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(name, variant) for name in factories for variant in variants]
    loaded = {p: cache.load(*p) for p in pairs} if cache is not None else {}
    todo = [p for p in pairs if loaded.get(p) is None]
    in_workers = min(jobs, len(todo)) > 1
    loggers = {p: logger_for(f"student-{p[0]}-{p[1]}") for p in todo}
    # in a worker a student trains with a recorder, replayed into its logger here afterwards
    fit_loggers = {p: RecordingLogger() if in_workers and loggers[p] else loggers[p] for p in todo}
    tasks = [
        functools.partial(
            _fit_one,
            factories[name],
            variants[variant],
            fs=fs,
            seed=seed,
            progress=progress and not in_workers,
            logger=fit_loggers[name, variant],
        )
        for name, variant in todo
    ]
    fitted = dict(zip(todo, run_tasks(tasks, jobs), strict=True))
    students: Students = {}
    for name, variant in pairs:
        block = students.setdefault(name, {})
        student = loaded.get((name, variant))
        if student is not None:
            log.info("student %s/%s loaded from the cache", name, variant)
        else:
            student, seconds, recorder = fitted[(name, variant)]
            if isinstance(student, str):  # e.g. every stimulus given one class by the teacher
                log.warning("student %s/%s could not be trained: %s", name, variant, student)
                block[variant] = student
                continue
            if isinstance(recorder, RecordingLogger):
                recorder.replay(loggers[(name, variant)])
            log.info("student %s/%s fitted in %.1f s", name, variant, seconds)
            if cache is not None:
                student = cache.save(name, variant, student)
        if save_dir is not None:
            student.save(save_dir / f"{name}-{variant}.joblib")
        block[variant] = student
    return students


def _fit_one(
    factory: StudentFactory,
    data: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    *,
    fs: float,
    seed: int,
    progress: bool,
    logger: Any,
) -> tuple[Student | str, float, Any]:
    """(the fitted student or the error of one that cannot learn from `data`, seconds, the
    logger it trained with)."""
    x, y, soft = data
    t = time.perf_counter()
    try:
        student = factory(fs=fs, seed=seed, progress=progress, logger=logger).fit(x, y, soft=soft)
    except ValueError as err:
        return str(err), time.perf_counter() - t, logger
    return student, time.perf_counter() - t, logger


def chunked_proba(student: Student, x: np.ndarray | WindowView, rows: int = 4096) -> np.ndarray:
    """`student.predict_proba` over `x` a chunk of `rows` windows at a time, so a `WindowView`
    of a large split is never read whole."""
    return np.concatenate(
        [np.asarray(student.predict_proba(x[i : i + rows])) for i in range(0, len(x), rows)]
    )


def score_students(
    students: Mapping[str, Mapping[str, Student | str]], x: np.ndarray | WindowView, y: np.ndarray
) -> tuple[dict[str, dict[str, dict]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(table, predictions) on windows `x` with labels `y`.

    `table[name][variant]` is `stimuli.metrics.score` of the student's probabilities, or
    `{"error": message}` for one that could not be trained; when `real` was scored, each scored
    variant `stimuliSUFFIX` adds `table[name]["gapSUFFIX"]`, real minus stimuli in each of
    `GAP_METRICS`. `predictions["NAME / VARIANT"]` is `(y, predicted class)`.
    """
    table: dict[str, dict[str, dict]] = {}
    predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, variants in students.items():
        block: dict[str, dict] = {}
        for variant, student in variants.items():
            if isinstance(student, str):  # the error of a student that could not be trained
                block[variant] = {"error": student}
                continue
            probs = chunked_proba(student, x)
            block[variant] = score(probs, y)
            predictions[f"{name} / {variant}"] = (y, probs.argmax(1))
        scored = [v for v in block if "error" not in block[v]]
        if "real" in scored:
            for variant in [v for v in scored if v.startswith("stimuli")]:
                suffix = variant[len("stimuli") :]
                block[f"gap{suffix}"] = {
                    m: round(block["real"][m] - block[variant][m], 4) for m in GAP_METRICS
                }
        table[name] = block
    return table, predictions
