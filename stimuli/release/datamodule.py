"""A released stimulus bundle (`release/` of a run) as a LightningDataModule, for third parties.

The bundle is verified against its `SHA256SUMS` when the module is made; a missing, unlisted or
altered file raises `stimuli.release.BundleError` naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from stimuli.release.bundle import BundleError, read_bundle, verify_bundle


class StimuliDataModule(pl.LightningDataModule):
    """Stimuli of a bundle, split at random (stratified by label) into train and val.

    Train items are `(x, label)`, or `(x, soft)` with `use_soft=True` (the teacher's
    probabilities, for distillation); val items are always `(x, label)` so that validation metrics
    work either way.
    """

    def __init__(
        self,
        path: str | Path,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        seed: int = 0,
        use_soft: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction={val_fraction} must be in [0, 1)")
        self.path = Path(path).expanduser()
        self.batch_size = batch_size
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)
        self.use_soft = bool(use_soft)
        self.num_workers = num_workers
        self.checksums = verify_bundle(self.path)  # {file: sha256}
        arrays, self.datacard = read_bundle(self.path, verify=False)
        self._check(arrays)
        self.x = np.ascontiguousarray(arrays["x"], dtype=np.float32)
        self.labels = np.asarray(arrays["labels"], dtype=np.int64)
        self.soft = None if "soft" not in arrays else np.asarray(arrays["soft"], np.float32)
        if self.use_soft and self.soft is None:
            raise BundleError(
                f"{self.path}: use_soft=True but the bundle has no soft labels "
                "(the owner released it with release.soft_labels=false)"
            )
        self.indices: dict[str, np.ndarray] = {}

    def _check(self, arrays: dict[str, np.ndarray]) -> None:
        where = self.path / "stimuli.npz"
        for key in ("x", "labels"):
            if key not in arrays:
                raise BundleError(f"{where}: no array {key!r}")
        x, y = arrays["x"], arrays["labels"]
        if x.ndim != 3 or len(y) != len(x):
            raise BundleError(f"{where}: x {x.shape} and labels {y.shape} are not (N, C, T), (N,)")
        if "soft" in arrays and arrays["soft"].shape != (len(x), self.n_classes_from(arrays)):
            raise BundleError(f"{where}: soft labels of shape {arrays['soft'].shape} do not fit")

    def n_classes_from(self, arrays: dict[str, np.ndarray]) -> int:
        names = (self.datacard.get("labels") or {}).get("names")
        if names:
            return len(names)
        if "soft" in arrays:
            return int(arrays["soft"].shape[1])
        return int(arrays["labels"].max()) + 1

    # --- what a third party needs to know -----------------------------------------------------
    @property
    def n_chans(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_times(self) -> int:
        return int(self.x.shape[2])

    @property
    def n_classes(self) -> int:
        arrays = {"labels": self.labels, **({"soft": self.soft} if self.soft is not None else {})}
        return self.n_classes_from(arrays)

    @property
    def fs(self) -> float:
        return float(self.datacard["fs"])

    @property
    def channels(self) -> list[str]:
        return list(self.datacard.get("channels") or [])

    @property
    def label_names(self) -> list[str]:
        names = (self.datacard.get("labels") or {}).get("names")
        return list(names) if names else [str(i) for i in range(self.n_classes)]

    @property
    def normalize(self) -> str | None:
        return self.datacard.get("normalize")

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """All stimuli, their labels and the soft labels (None when the bundle has none)."""
        return self.x, self.labels, self.soft

    # --- loaders ------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.indices:
            return
        rng = np.random.default_rng(self.seed)
        train, val = [], []
        for c in np.unique(self.labels):
            idx = rng.permutation(np.flatnonzero(self.labels == c))
            n_val = round(self.val_fraction * len(idx))
            if self.val_fraction > 0 and len(idx) > 1:
                n_val = max(n_val, 1)
            val.append(idx[:n_val])
            train.append(idx[n_val:])
        self.indices = {
            "train": np.sort(np.concatenate(train)),
            "val": np.sort(np.concatenate(val)),
        }

    def _dataset(self, split: str) -> TensorDataset:
        self.setup()
        idx = self.indices[split]
        x = torch.from_numpy(self.x[idx])
        if split == "train" and self.use_soft:
            return TensorDataset(x, torch.from_numpy(self.soft[idx]))
        return TensorDataset(x, torch.from_numpy(self.labels[idx]))

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self._dataset("train"),
            batch_size=self.batch_size,
            shuffle=True,
            generator=gen,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self._dataset("val"), batch_size=self.batch_size, num_workers=self.num_workers
        )
