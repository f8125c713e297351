"""Inputs of the Anonymeter attacks (`stimuli.privacy.anonymeter_risks`): checked feature
matrices, members and control matched in size and label mix, frames, and the seeding and
warning capture that make anonymeter's evaluators deterministic and quiet."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

LABEL = "label"


# --- inputs ------------------------------------------------------------------------------------
def checked_features(name: str, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (windows, features), got shape {x.shape}")
    if x.shape[1] != len(names):
        raise ValueError(
            f"{name} has {x.shape[1]} feature columns but names has {len(names)} entries"
        )
    if len(x) == 0:
        raise ValueError(f"{name} has no windows")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite features")
    return x


def checked_labels(name: str, y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name} must be 1-D with one label per window ({n}), got shape {y.shape}")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(f"{name} must hold apnea labels 0/1, got values {np.unique(y)[:10]}")
    return y.astype(np.int64)


def aux_columns(names: list[str], aux: Any) -> tuple[list[str], list[str]]:
    if aux is None:
        half = len(names) // 2
        return names[:half], names[half:]
    if len(aux) != 2:
        raise ValueError("cfg linkability_aux must be two lists of feature names")
    cols = (list(aux[0]), list(aux[1]))
    unknown = sorted(set(cols[0] + cols[1]) - set(names))
    if unknown:
        raise ValueError(f"cfg linkability_aux names unknown features: {unknown}")
    if not cols[0] or not cols[1] or set(cols[0]) & set(cols[1]):
        raise ValueError("cfg linkability_aux needs two non-empty, disjoint lists of features")
    return cols


def unique_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct (features, label) row, in order."""
    _, first = np.unique(np.column_stack([x, y]), axis=0, return_index=True)
    return np.sort(first)


def matched_rows(
    y_a: np.ndarray, y_b: np.ndarray, n_max: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a and b: equally many windows of each label from both, at most `n_max`."""
    counts = np.array([min(np.sum(y_a == c), np.sum(y_b == c)) for c in (0, 1)])
    if counts.sum() > n_max:  # scale down to n_max, largest remainders first
        share = counts * n_max / counts.sum()
        counts = np.floor(share).astype(int)
        counts[np.argsort(counts - share)[: n_max - counts.sum()]] += 1
    picks_a, picks_b = [], []
    for c, k in zip((0, 1), counts):
        picks_a.append(rng.choice(np.flatnonzero(y_a == c), size=k, replace=False))
        picks_b.append(rng.choice(np.flatnonzero(y_b == c), size=k, replace=False))
    a, b = np.concatenate(picks_a), np.concatenate(picks_b)
    return a[rng.permutation(len(a))], b[rng.permutation(len(b))]


def nearest_same_label(
    x: np.ndarray, y: np.ndarray, x_pool: np.ndarray, y_pool: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """For each row of `x`, the index of its nearest row of `x_pool` with the same label: L1
    distance on features scaled by their range in `reference` (anonymeter's Gower distance)."""
    span = np.ptp(reference, axis=0)
    span = np.where(span > 0, span, 1.0)
    out = np.empty(len(x), dtype=np.int64)
    for c in (0, 1):
        rows, pool = np.flatnonzero(y == c), np.flatnonzero(y_pool == c)
        if len(rows) == 0:
            continue
        if len(pool) == 0:
            raise ValueError(f"control has no windows of label {c}, which original has")
        nn = NearestNeighbors(n_neighbors=1, metric="manhattan").fit(x_pool[pool] / span)
        out[rows] = pool[nn.kneighbors(x[rows] / span, return_distance=False)[:, 0]]
    return out


def to_frame(x: np.ndarray, y: np.ndarray, names: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(x, columns=names)
    df[LABEL] = pd.Categorical(y.astype(str), categories=["0", "1"])
    return df


# --- running anonymeter quietly and reproducibly --------------------------------------------------
class _Notes(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect anonymeter's warnings and logged notes instead of printing them."""
    notes = _Notes()
    logger = logging.getLogger("anonymeter")
    propagate = logger.propagate
    logger.addHandler(notes)
    logger.propagate = False
    messages: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
        messages.extend(str(w.message) for w in caught)
    finally:
        logger.removeHandler(notes)
        logger.propagate = propagate
        messages.extend(notes.messages)


@contextlib.contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global state (pandas' `sample` draws from it), restore it afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def seeded_random_links(rng: np.random.Generator):
    """anonymeter's `_random_links` (its linkability baseline), drawing from `rng`."""

    def random_links(n_synthetic: int, n_attacks: int, n_neighbors: int) -> np.ndarray:
        return np.array(
            [rng.choice(n_synthetic, size=n_neighbors, replace=False) for _ in range(n_attacks)]
        )

    return random_links
