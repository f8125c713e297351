"""The one student interface: what a third party trains on real windows or on stimuli.

Every student (`NeuralStudent`, `ClassicalStudent`) is a `Student`:

- built by a factory, the Hydra partial of a `conf/student/*.yaml` node, always called as
  `factory(fs=..., seed=..., progress=..., logger=...)`; a student ignores what it has no use
  for (a scikit-learn student has no progress bar and no Lightning logger);
- `fit(x, y, soft=None) -> self` on windows `x: (N, n_chans, n_times)`, class indices
  `y: (N,)` and optionally the teacher's probabilities `soft: (N, K)`; a training set a student
  cannot learn from (e.g. one class only) raises `ValueError`;
- `predict_proba(x) -> (N, K)` class probabilities, `predict(x) -> (N,)` their argmax;
- `save(path)` / `Student.load(path)`: one joblib file, `students/<name>-<variant>.joblib` in a
  run folder, which `stimuli.evaluate` reopens with `joblib.load(path).predict_proba(x)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import joblib
import numpy as np

from stimuli.io import atomic_path


class Student(ABC):
    """A classifier of windows with a fixed training recipe (see the module docstring)."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def fit(self, x: np.ndarray, y: np.ndarray, soft: np.ndarray | None = None) -> Student:
        """Train on windows `x` with labels `y` (and the teacher's soft labels); returns self."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """`(N, K)` class probabilities of windows `x`."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_proba(x)).argmax(1).astype(np.int64)

    def save(self, path: str | Path) -> Path:
        """Write this student to `path` (joblib). It is written to a temporary file in the same
        folder and renamed into place, so `path` is either the old file or the whole new one."""
        path = Path(path)
        with atomic_path(path) as tmp:
            joblib.dump(self, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Student:
        """The student saved at `path`; `TypeError` if the file holds anything else (or, called
        on a subclass, a student of another kind)."""
        obj = joblib.load(path)
        if not isinstance(obj, cls):
            raise TypeError(f"{path}: holds a {type(obj).__qualname__}, not a {cls.__name__}")
        return obj
