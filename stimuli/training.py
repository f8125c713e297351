"""Fitting a `Classifier` with Lightning on arrays or a DataModule, deterministically on CPU."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

log = logging.getLogger(__name__)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    weights = len(y) / (n_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def array_loader(
    x: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
) -> DataLoader:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    target = torch.as_tensor(np.asarray(target))
    target = target.float() if target.ndim == 2 else target.long()
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(x, target), batch_size=batch_size, shuffle=shuffle, generator=gen
    )


def make_trainer(
    *,
    max_epochs: int | None = None,
    max_steps: int = -1,
    callbacks: Sequence[pl.Callback] = (),
    logger: Any = False,
    root_dir: str | Path | None = None,
    progress: bool = False,
    overrides: dict | None = None,
) -> pl.Trainer:
    kwargs = {
        "accelerator": "cpu",
        "devices": 1,
        "deterministic": True,
        "enable_checkpointing": any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        "enable_model_summary": False,
        "enable_progress_bar": progress,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 10,
        "max_epochs": max_epochs if max_epochs is not None else (-1 if max_steps > 0 else 1),
        "max_steps": max_steps,
        "callbacks": list(callbacks),
        "logger": logger,
        "default_root_dir": str(root_dir) if root_dir else None,
    }
    kwargs.update(overrides or {})
    if "spawn" in str(kwargs.get("strategy", "")):
        # file-descriptor sharing fails on the empty storages of a fresh module (gloo, CPU)
        torch.multiprocessing.set_sharing_strategy("file_system")
    return pl.Trainer(**kwargs)
