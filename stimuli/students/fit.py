"""Fitting and scoring students: the one loop the pipeline, the third party and experiments use.

`student_factories(cfg.students)` builds one factory per `conf/student` node; `fit_students`
trains each of them on every variant of the training data (`real` windows, `stimuli`, the
stimuli with soft labels `stimuli_kd`, ...), and `score_students` scores them on held-out
windows, with the `gap` of each stimuli variant to `real` (`gap`, `gap_kd`).

Students are fitted name by name and, for each, variant by variant in the mapping's order, each
from a fresh factory call with the same `seed`, so a student's numbers never depend on which
other students or variants ran. A variant a student cannot learn from (`ValueError`, e.g. the
teacher gave every stimulus one class) is kept as its error message instead of the student.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate

from stimuli.data.datasets import WindowView
from stimuli.metrics import GAP_METRICS, score
from stimuli.students.base import Student

log = logging.getLogger(__name__)

# variant name -> (windows, hard labels, soft labels or None)
Variants = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]
StudentFactory = Callable[..., Student]
# (student name, variant, fit) -> the fitted student: `fit()` trains it; a cache may return a
# student it saved before instead (the pipeline's store: `stimuli.pipeline.assess_stages`)
FitCache = Callable[[str, str, Callable[[], Student]], Student]
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
    cache: FitCache | None = None,
) -> Students:
    """Each student (outer loop) fitted on each variant (inner loop): `factory(fs=fs, seed=seed,
    progress=progress, logger=logger_for("student-NAME-VARIANT")).fit(x, y, soft=soft)`.
    With `save_dir`, each fitted student is saved as `save_dir/NAME-VARIANT.joblib`; with
    `cache`, each fit goes through `cache(name, variant, fit)`."""
    if save_dir is not None:
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
    students: Students = {}
    for name, factory in factories.items():
        block = students.setdefault(name, {})
        for variant, (x, y, soft) in variants.items():
            t = time.perf_counter()

            def fit(factory=factory, name=name, variant=variant, x=x, y=y, soft=soft) -> Student:
                logger = logger_for(f"student-{name}-{variant}")
                student = factory(fs=fs, seed=seed, progress=progress, logger=logger)
                return student.fit(x, y, soft=soft)

            try:
                student = cache(name, variant, fit) if cache is not None else fit()
            except ValueError as err:  # e.g. every stimulus given one class by the teacher
                log.warning("student %s/%s could not be trained: %s", name, variant, err)
                block[variant] = str(err)
                continue
            log.info("student %s/%s fitted in %.1f s", name, variant, time.perf_counter() - t)
            if save_dir is not None:
                student.save(save_dir / f"{name}-{variant}.joblib")
            block[variant] = student
    return students


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
