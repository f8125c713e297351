"""Nearest neighbours in raw window space and in a network's (standardized) embedding space.

Windows are read `READ_ROWS` at a time on both sides, so the reference and the query may be
memory maps or `RowView`s of a cohort many times the open one: the cohort is never held whole.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from stimuli.classifier import embed

READ_ROWS = 4096  # windows read at a time (each side)


def flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))


def flat_chunks(x: np.ndarray, size: int = READ_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """`(first row, rows flattened)` of `x` (an array, a memory map or a row view), `size` at a
    time."""
    for start in range(0, len(x), size):
        yield start, flat(x[start : start + size])


def knn(
    reference: np.ndarray, query: np.ndarray, k: int = 1, chunk: int = READ_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices `(n_query, k)` of the `k` nearest reference rows (Euclidean; of
    equally near rows the first). Both sides are read `chunk` rows at a time: the exact
    brute-force search, merged over the reference's chunks."""
    k = min(k, len(reference))
    dist = np.empty((len(query), k))
    idx = np.empty((len(query), k), dtype=np.int64)
    for q0, q in flat_chunks(query, chunk):
        best_d = np.empty((len(q), 0))
        best_i = np.empty((len(q), 0), dtype=np.int64)
        for r0, ref in flat_chunks(reference, chunk):
            index = NearestNeighbors(n_neighbors=min(k, len(ref)), algorithm="brute").fit(ref)
            d, i = index.kneighbors(q)
            # earlier chunks first and a stable sort: ties go to the lower reference row
            best_d, best_i = np.hstack([best_d, d]), np.hstack([best_i, i + r0])
            keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
            best_d = np.take_along_axis(best_d, keep, 1)
            best_i = np.take_along_axis(best_i, keep, 1)
        dist[q0 : q0 + len(q)], idx[q0 : q0 + len(q)] = best_d, best_i
    return dist, idx


def nearest_other(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Distance of each window `x[sample]` to its nearest *other* window of `x`."""
    dist, idx = knn(x, x[np.asarray(sample)], k=2)
    if dist.shape[1] < 2:
        return np.full(len(sample), np.nan)
    # a query's first hit is itself, unless an exact duplicate came first
    return np.where(idx[:, 0] == sample, dist[:, 1], dist[:, 0])


def embedding(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return embed(model, torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


class EmbeddingSpace:
    """A network's embedding, standardized on the real training windows' embeddings."""

    def __init__(self, model: torch.nn.Module, fit_on: np.ndarray) -> None:
        self.model = model
        raw = embedding(model, fit_on)
        self.scaler = StandardScaler().fit(raw)
        self.fitted = self.scaler.transform(raw).astype(np.float32)  # `fit_on`, embedded

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.scaler.transform(embedding(self.model, x)).astype(np.float32)
