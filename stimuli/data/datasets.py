"""Torch datasets over cached window arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class WindowDataset(Dataset):
    """Items `(x float32 (n_chans, n_times), label, person index)`; person indices are internal."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        person: np.ndarray,
        indices: np.ndarray,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        self.x, self.y, self.person, self.indices = x, y, person, np.asarray(indices)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)[:, None]
        self.std = None if std is None else np.asarray(std, dtype=np.float32)[:, None]

    def __len__(self) -> int:
        return len(self.indices)

    def window(self, i: int) -> np.ndarray:
        x = np.array(self.x[self.indices[i]], dtype=np.float32)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        j = self.indices[i]
        return torch.from_numpy(self.window(i)), int(self.y[j]), int(self.person[j])

    def labels(self) -> np.ndarray:
        """The apnea labels, without reading a window."""
        return np.asarray(self.y[self.indices])

    def view(self, rows: np.ndarray | None = None) -> WindowView:
        """The windows (or those at positions `rows` of this dataset) as a lazily read array:
        indexing it reads and normalizes only those rows, so batched prediction or training
        over a split never holds the whole split."""
        return WindowView(self, np.arange(len(self)) if rows is None else np.asarray(rows))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All windows at once (normalized), labels and person indices."""
        x = np.asarray(self.x[self.indices], dtype=np.float32)
        if self.mean is not None:
            x = (x - self.mean[None]) / self.std[None]
        return x, np.asarray(self.y[self.indices]), np.asarray(self.person[self.indices])


class WindowView:
    """`len()` and row reads (a slice or an index array, any order) of a `WindowDataset`'s
    windows, read on demand from the (memory-mapped) cache as float32, normalized."""

    def __init__(self, ds: WindowDataset, rows: np.ndarray) -> None:
        self.ds, self.rows = ds, rows
        if rows.dtype == bool:
            raise TypeError("WindowView rows are positions; use np.flatnonzero(mask)")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.ds.x.shape[1:])

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, int | np.integer):
            raise TypeError("a WindowView reads rows in batches: view[0:512] or view[[3, 1]]")
        x = np.asarray(self.ds.x[self.ds.indices[self.rows[key]]], dtype=np.float32)
        if self.ds.mean is not None:
            x = (x - self.ds.mean[None]) / self.ds.std[None]
        return x

    def subset(self, rows: np.ndarray) -> WindowView:
        """The view of rows `rows` (positions in this view)."""
        return WindowView(self.ds, self.rows[np.asarray(rows)])


class RowView:
    """Rows `rows` of an array (in memory or memory-mapped), read on demand as float32: a subset
    to train on or predict over without copying it first."""

    def __init__(self, x: np.ndarray, rows: np.ndarray) -> None:
        self.x, self.rows = x, np.asarray(rows)
        if self.rows.dtype == bool:
            raise TypeError("RowView rows are positions; use np.flatnonzero(mask)")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.x.shape[1:])

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, int | np.integer):
            raise TypeError("a RowView reads rows in batches: view[0:512] or view[[3, 1]]")
        return np.asarray(self.x[self.rows[key]], dtype=np.float32)
