"""scikit-learn students: representation -> StandardScaler -> estimator.

A `ClassicalStudent` is trained once on real windows and once on stimuli, then scored on real
test people, so both runs must see exactly the same model: the pipeline is built from the
constructor arguments alone and every random state is tied to `seed`.

Soft labels. When `fit` gets the teacher's probabilities `soft: (N, K)` and the estimator's
`fit` accepts `sample_weight`, each window is presented K times, once per class k, with weight
`soft[i, k]` (rows with zero weight are dropped). For a weighted log-loss or Gini criterion this
is exactly training on the soft targets, and a window the teacher was unsure about pulls both
ways; the total weight stays N. `class_weight="balanced"` would count the duplicated labels
(always N per class), so it is replaced by weights `N / (n_present * mass_k)` with
`mass_k = soft[:, k].sum()`, sklearn's formula with soft counts. Hard labels go the same way as
one-hot soft labels, so a student fitted on real windows (hard) and on stimuli (soft) differs
only by its data, and one-hot `soft` gives exactly the hard fit. Estimators without
`sample_weight` (k-NN) get the hard labels `soft.argmax(1)`. In both cases `soft` supersedes `y`,
which is then only checked for shape.

For `svm` the calibration folds split the duplicated rows independently, so the two copies of
one window can fall on both sides of a fold; with hard labels nothing is duplicated.

`n_threads` caps BLAS/OpenMP threads during fit and predict (threadpoolctl; `None` = library
default). `HistGradientBoostingClassifier` otherwise starts one OpenMP thread per core, which
on shared CPUs made it ~15x slower; parallelism belongs to the caller (one student per job).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import has_fit_parameter
from threadpoolctl import threadpool_limits

from stimuli.data.datasets import RowView
from stimuli.students.base import Student
from stimuli.students.features import CHUNK, window_features

Representation = Literal["features", "flatten"]
ESTIMATORS = ("knn", "random_forest", "logreg", "svm", "gboost")


def flatten(x: np.ndarray | RowView) -> np.ndarray:
    """`(N, n_chans * n_times)` float64; a `RowView` is read `CHUNK` rows at a time."""
    if isinstance(x, RowView):
        return np.concatenate([flatten(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])
    x = np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float64, copy=False)


def make_estimator(name: str, seed: int = 0, **params) -> BaseEstimator:
    """A named estimator with this project's defaults, overridden by `params`.

    For `svm`, `params` go to the inner `LinearSVC` except `cv`/`method`, which configure the
    sigmoid calibration that turns its margins into probabilities.
    """
    if name == "knn":
        return KNeighborsClassifier(**{"n_neighbors": 15, "n_jobs": 1, **params})
    if name == "random_forest":
        defaults = {"n_estimators": 200, "min_samples_leaf": 2, "n_jobs": 1, "random_state": seed}
        return RandomForestClassifier(**{**defaults, **params})
    if name == "logreg":
        defaults = {"C": 1.0, "class_weight": "balanced", "max_iter": 2000, "random_state": seed}
        return LogisticRegression(**{**defaults, **params})
    if name == "svm":
        cv = params.pop("cv", 3)
        method = params.pop("method", "sigmoid")
        svc = LinearSVC(**{"C": 0.1, "class_weight": "balanced", "random_state": seed, **params})
        return CalibratedClassifierCV(svc, cv=cv, method=method)
    if name == "gboost":
        defaults = {
            "max_iter": 200,
            "learning_rate": 0.1,
            "max_leaf_nodes": 31,
            "early_stopping": False,
            "random_state": seed,
        }
        return HistGradientBoostingClassifier(**{**defaults, **params})
    raise ValueError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")


def _seeded(estimator: BaseEstimator, seed: int) -> BaseEstimator:
    """A clone with every unset `random_state` (nested ones too) fixed to `seed`."""
    estimator = clone(estimator)
    unset = {
        key: seed
        for key, value in estimator.get_params(deep=True).items()
        if key.endswith("random_state") and value is None
    }
    return estimator.set_params(**unset) if unset else estimator


class ClassicalStudent(Student):
    """`estimator`: a name from `ESTIMATORS` (built by `make_estimator` with `estimator_params`)
    or a scikit-learn classifier, cloned and updated with `estimator_params`; any unset
    `random_state` in it is set to `seed`. Labels are class indices 0..K-1 and `predict_proba`
    always has K columns, in that order. `progress` and `logger` are accepted for the common
    student factory call and ignored (scikit-learn has no progress bar or Lightning logger), so
    they never reach `estimator_params`."""

    def __init__(
        self,
        estimator: str | BaseEstimator,
        representation: Representation = "features",
        fs: float = 4.0,
        seed: int = 0,
        n_threads: int | None = 1,
        progress: bool = False,
        logger: Any = None,
        **estimator_params,
    ) -> None:
        del progress, logger  # nothing to report to
        if representation not in ("features", "flatten"):
            raise ValueError(
                f"representation must be 'features' or 'flatten', got {representation!r}"
            )
        if not fs > 0:
            raise ValueError(f"fs must be positive, got {fs}")
        self.estimator = estimator
        self.representation = representation
        self.fs = float(fs)
        self.seed = int(seed)
        self.n_threads = n_threads
        self.estimator_params = dict(estimator_params)
        self.pipeline_: Pipeline | None = None
        self.n_classes_: int | None = None
        self.input_shape_: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        if isinstance(self.estimator, str):
            return self.estimator
        return type(self.estimator).__name__

    def _build(self) -> Pipeline:
        if isinstance(self.estimator, str):
            est = make_estimator(self.estimator, seed=self.seed, **self.estimator_params)
        elif isinstance(self.estimator, BaseEstimator):
            est = clone(self.estimator).set_params(**self.estimator_params)
        else:
            raise TypeError(
                f"estimator must be a name or a scikit-learn estimator, got {type(self.estimator)}"
            )
        if self.representation == "features":
            func = partial(window_features, fs=self.fs)
        else:
            func = flatten
        return Pipeline(
            [
                ("represent", FunctionTransformer(func)),
                ("scale", StandardScaler()),
                ("clf", _seeded(est, self.seed)),
            ]
        )

    def _check_x(self, x: np.ndarray | RowView) -> np.ndarray | RowView:
        """`x` as an array, or as it is when it is a `RowView` (read chunk by chunk)."""
        if not isinstance(x, RowView):
            x = np.asarray(x)
        if len(x.shape) != 3:
            raise ValueError(f"windows must be 3-D (N, n_chans, n_times), got shape {x.shape}")
        if len(x) == 0:
            raise ValueError("got no windows")
        if self.input_shape_ is not None and x.shape[1:] != self.input_shape_:
            raise ValueError(
                f"student was fitted on windows of shape (N, *{self.input_shape_}), got {x.shape}"
            )
        return x

    def fit(
        self, x: np.ndarray | RowView, y: np.ndarray | None = None, soft: np.ndarray | None = None
    ) -> ClassicalStudent:
        self.pipeline_, self.n_classes_, self.input_shape_ = None, None, None
        x = self._check_x(x)
        n = len(x)
        if y is None and soft is None:
            raise ValueError("fit needs labels y or soft labels")
        if y is not None:
            y = np.asarray(y)
            if y.shape != (n,):
                raise ValueError(f"y must have shape ({n},) to match x {x.shape}, got {y.shape}")
            if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
                raise ValueError("y must hold non-negative integer class indices")

        pipe = self._build()
        clf = pipe.named_steps["clf"]
        if soft is not None:
            soft = np.asarray(soft, dtype=np.float64)
            if soft.ndim != 2 or len(soft) != n or soft.shape[1] < 2:
                raise ValueError(f"soft must have shape ({n}, K>=2) to match x, got {soft.shape}")
            if not np.all(np.isfinite(soft)) or soft.min() < 0 or np.any(soft.sum(1) <= 0):
                raise ValueError("soft must hold non-negative finite rows with a positive sum")
            soft = soft / soft.sum(1, keepdims=True)
        n_classes = soft.shape[1] if soft is not None else int(y.max()) + 1

        weights = None
        if has_fit_parameter(clf, "sample_weight"):
            # Hard labels take the same road as one-hot soft labels, so that a student trained
            # on real windows (hard) and on stimuli (soft) differs only by its data.
            targets = soft if soft is not None else np.eye(n_classes)[y]
            labels, weights, rows = self._expand_soft(targets, clf)
        else:
            labels = soft.argmax(1) if soft is not None else y
            rows = np.arange(n)

        present = np.unique(labels)
        if len(present) < 2:
            raise ValueError(
                f"a student needs both classes in its training set; got only class "
                f"{present.tolist()} in {n} windows"
            )

        with threadpool_limits(self.n_threads):
            z = pipe.named_steps["represent"].fit_transform(x)
            z = pipe.named_steps["scale"].fit_transform(z)
            fit_params = {} if weights is None else {"sample_weight": weights}
            clf.fit(z[rows], labels, **fit_params)
        self.pipeline_ = pipe
        self.n_classes_ = max(n_classes, int(clf.classes_.max()) + 1)
        self.input_shape_ = tuple(x.shape[1:])
        return self

    @staticmethod
    def _expand_soft(
        soft: np.ndarray, clf: BaseEstimator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, k = soft.shape
        rows = np.repeat(np.arange(n), k)
        labels = np.tile(np.arange(k), n)
        weights = soft.ravel().copy()
        balance = {
            key: None
            for key, value in clf.get_params(deep=True).items()
            if key.endswith("class_weight") and value in ("balanced", "balanced_subsample")
        }
        if balance:
            clf.set_params(**balance)
            mass = soft.sum(0)
            n_present = np.count_nonzero(mass > 0)
            weights *= (n / (n_present * np.maximum(mass, 1e-12)))[labels]
        keep = weights > 0
        return labels[keep], weights[keep], rows[keep]

    def predict_proba(self, x: np.ndarray | RowView) -> np.ndarray:
        if self.pipeline_ is None:
            raise RuntimeError("this student is not fitted yet; call fit first")
        x = self._check_x(x)
        with threadpool_limits(self.n_threads):
            proba = self.pipeline_.predict_proba(x)
        classes = self.pipeline_.named_steps["clf"].classes_.astype(np.int64)
        out = np.zeros((len(x), self.n_classes_), dtype=np.float64)
        out[:, classes] = proba
        return out

    def __repr__(self) -> str:
        params = "".join(f", {k}={v!r}" for k, v in self.estimator_params.items())
        return (
            f"ClassicalStudent({self.name!r}, representation={self.representation!r}, "
            f"fs={self.fs}, seed={self.seed}, n_threads={self.n_threads}{params})"
        )
