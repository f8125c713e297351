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

    def normalized(self, x: np.ndarray) -> np.ndarray:
        """Raw cache rows `x` (one window or a batch) as float32, normalized as this split is."""
        x = np.array(x, dtype=np.float32)
        if self.mean is not None:
            x = (x - self.mean) / self.std  # (n_chans, 1): broadcasts over a batch too
        return x

    def window(self, i: int) -> np.ndarray:
        return self.normalized(self.x[self.indices[i]])

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
        if rows is None:
            return WindowView(self, self.indices)
        rows = np.asarray(rows)
        if rows.dtype == bool:
            raise TypeError("WindowView rows are positions; use np.flatnonzero(mask)")
        return WindowView(self, self.indices[rows])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All windows at once (normalized), labels and person indices."""
        x = self.normalized(self.x[self.indices])
        return x, np.asarray(self.y[self.indices]), np.asarray(self.person[self.indices])


class RowView:
    """Rows `rows` of an array (in memory or memory-mapped), read on demand as float32: a subset
    to train on or predict over without copying it first. Read in batches (a slice or an index
    array, any order)."""

    def __init__(self, x: np.ndarray, rows: np.ndarray) -> None:
        self.x, self.rows = x, np.asarray(rows)
        if self.rows.dtype == bool:
            raise TypeError(f"{type(self).__name__} rows are positions; use np.flatnonzero(mask)")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.x.shape[1:])

    def __getitem__(self, key: slice | np.ndarray) -> np.ndarray:
        if isinstance(key, int | np.integer):
            name = type(self).__name__
            raise TypeError(f"a {name} reads rows in batches: view[0:512] or view[[3, 1]]")
        return self._finish(self.x[self.rows[key]])

    def _finish(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)


class WindowView(RowView):
    """Cache rows `cache_rows` of a `WindowDataset`'s windows (`WindowDataset.view` makes one),
    read from the memory map on demand and normalized as the dataset's items are."""

    def __init__(self, ds: WindowDataset, cache_rows: np.ndarray) -> None:
        super().__init__(ds.x, cache_rows)
        self.ds = ds

    def _finish(self, x: np.ndarray) -> np.ndarray:
        return self.ds.normalized(x)

    def subset(self, rows: np.ndarray) -> WindowView:
        """The view of rows `rows` (positions in this view)."""
        return WindowView(self.ds, self.rows[np.asarray(rows)])
