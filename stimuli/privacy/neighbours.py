"""Nearest neighbours in raw window space and in a network's (standardized) embedding space."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from stimuli.classifier import embed


def flat(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))


def knn(reference: np.ndarray, query: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices `(n_query, k)` of the `k` nearest reference rows (Euclidean)."""
    k = min(k, len(reference))
    index = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(flat(reference))
    return index.kneighbors(flat(query), n_neighbors=k)


def nearest_other(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """Distance of each window `x[sample]` to its nearest *other* window of `x`."""
    dist, idx = knn(x, x[sample], k=2)
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
