"""Adaptive DeepInversion's competitor: a student of the teacher's architecture distilled from
the shards synthesized so far, so the next shard is pushed to where such a student still
disagrees with the teacher."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from hydra.utils import instantiate
from torch import nn

from stimuli.students.neural import NeuralStudent

log = logging.getLogger(__name__)


def fit_competitor(
    x: np.ndarray,
    labels: np.ndarray,
    soft: np.ndarray,
    *,
    model_cfg: Any,
    student_defaults: Mapping[str, Any],
    steps: int,
    seed: int,
) -> nn.Module:
    """The teacher's architecture (`model_cfg`) distilled from `(x, soft)` for `steps` steps with
    the shared student settings; returns the network in eval mode."""
    d = student_defaults
    student = NeuralStudent(
        instantiate(model_cfg),
        steps=int(steps),
        batch_size=int(d["batch_size"]),
        lr=float(d["lr"]),
        weight_decay=float(d["weight_decay"]),
        max_shift=int(d["max_shift"]),
        amp_jitter=float(d["amp_jitter"]),
        temperature=float(d["temperature"]),
        seed=seed,
        trainer=d.get("trainer"),
    )
    t = time.perf_counter()
    student.fit(x, labels, soft=soft)
    log.info("competitor (seed %d) fitted in %.1f s", seed, time.perf_counter() - t)
    return student.model_
