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

    def view(self) -> WindowView:
        """The windows as a lazily read array: slicing it reads (and normalizes) only those
        rows, so batched prediction over a split never holds the whole split."""
        return WindowView(self)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All windows at once (normalized), labels and person indices."""
        x = np.asarray(self.x[self.indices], dtype=np.float32)
        if self.mean is not None:
            x = (x - self.mean[None]) / self.std[None]
        return x, np.asarray(self.y[self.indices]), np.asarray(self.person[self.indices])


class WindowView:
    """`len()` and row slices of a `WindowDataset`'s windows, read on demand (float32)."""

    def __init__(self, ds: WindowDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice):
            raise TypeError("a WindowView is read in row slices, e.g. view[0:512]")
        x = np.asarray(self.ds.x[self.ds.indices[rows]], dtype=np.float32)
        if self.ds.mean is not None:
            x = (x - self.ds.mean[None]) / self.ds.std[None]
        return x
