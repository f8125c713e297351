"""Fitting a `Classifier` with Lightning: the one Trainer factory, array loaders, class weights."""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset, TensorDataset

from stimuli.config import plain_config
from stimuli.data.datasets import RowView, WindowView
from stimuli.env import env_switch

log = logging.getLogger(__name__)


def balanced_class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(np.asarray(y), minlength=n_classes).astype(np.float64)
    weights = len(y) / (n_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32)


def array_loader(
    x: np.ndarray | torch.Tensor | WindowView | RowView,
    target: np.ndarray | torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
) -> DataLoader:
    """Batches of `(x, target)`, shuffled by a generator seeded with `seed`. A `WindowView` or
    `RowView` `x` is read batch by batch; the batches are the same as for its arrays."""
    target = torch.as_tensor(np.asarray(target))
    target = target.float() if target.ndim == 2 else target.long()
    gen = torch.Generator().manual_seed(seed)
    if isinstance(x, WindowView | RowView):
        dataset, collate = LazyRows(x, target), _batch_as_is
    else:
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        dataset, collate = TensorDataset(x, target), None
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate
    )


class LazyRows(Dataset):
    """`(window, target)` pairs over a row view; the loader fetches a batch in one read."""

    def __init__(self, x: WindowView | RowView, target: torch.Tensor) -> None:
        if len(x) != len(target):
            raise ValueError(f"{len(x)} windows but {len(target)} targets")
        self.x, self.target = x, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.x[[i]][0]), self.target[i]

    def __getitems__(self, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.x[np.asarray(rows)]), self.target[rows]


def _batch_as_is(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch


# Settings every Trainer here shares unless the `trainer/` config group says otherwise.
_BASE = {
    "accelerator": "cpu",
    "devices": 1,
    "deterministic": True,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 10,
}
# `deterministic=True` makes Lightning turn on torch's deterministic algorithms, and with them
# `torch.utils.deterministic.fill_uninitialized_memory`: every `torch.empty` is filled with NaN,
# so that a kernel reading memory it never wrote shows up. No kernel here does (the same numbers
# bit for bit either way: tests/test_students.py, the default run, the audit's 8 splits), and
# the fill is one more pass over every activation, gradient and buffer: a cnn student fit and a
# synthesis shard run 1.03x and 1.05x as fast without it at one thread
# (`python -m bench.uninitialized_fill --threads 1`). `STIMULI_FILL_UNINITIALIZED=1` keeps
# torch's fill (to hunt such a kernel).
FILL_ENV = "STIMULI_FILL_UNINITIALIZED"
# Keys of a `trainer/` node that place a job on hardware; the rest (checkpointing, logging
# cadence) belongs to the run that builds the Trainer.
PLACEMENT_KEYS = ("accelerator", "devices", "strategy", "precision", "sync_batchnorm")


def make_trainer(
    trainer_cfg: Mapping[str, Any] | None = None,
    *,
    max_epochs: int | None = None,
    max_steps: int = -1,
    callbacks: Sequence[pl.Callback] = (),
    logger: Any = False,
    root_dir: str | Path | None = None,
    progress: bool = False,
    single_device: bool = False,
) -> pl.Trainer:
    """The one Trainer factory: every network trained here (teacher, identity model, label
    teachers, auditor, neural students, competitor) and synthesis get their Trainer from it.

    `trainer_cfg` is the `trainer/` config group (or any subset of its keys: accelerator,
    devices, precision, strategy, ...); its `_target_` is ignored, this builds a
    `pytorch_lightning.Trainer`. `single_device=True` drops data-parallel strategies and uses
    one device of the configured accelerator (synthesis: the stimuli's gradient must not be
    averaged over ranks).
    """
    settings = {
        k: v for k, v in dict(plain_config(trainer_cfg) or {}).items() if not str(k).startswith("_")
    }
    if single_device:
        settings = {k: v for k, v in settings.items() if k not in ("strategy", "sync_batchnorm")}
        settings["devices"] = 1
    kwargs = {**_BASE, **settings}
    kwargs.update(
        enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks),
        enable_progress_bar=progress,
        max_epochs=max_epochs if max_epochs is not None else (-1 if max_steps > 0 else 1),
        max_steps=max_steps,
        callbacks=list(callbacks),
        logger=logger,
        default_root_dir=str(root_dir) if root_dir else None,
    )
    if kwargs.get("deterministic"):
        torch.utils.deterministic.fill_uninitialized_memory = env_switch(FILL_ENV, default=False)
    if "spawn" in str(kwargs.get("strategy", "")):
        # file-descriptor sharing fails on the empty storages of a fresh module (gloo, CPU)
        torch.multiprocessing.set_sharing_strategy("file_system")
    return pl.Trainer(**kwargs)


def placement(trainer_cfg: Any) -> dict[str, Any]:
    """Only the hardware settings (`PLACEMENT_KEYS`) of a `trainer/` node: what every Trainer of a
    job shares, whatever its logging or checkpointing."""
    settings = dict(plain_config(trainer_cfg) or {})
    return {k: settings[k] for k in PLACEMENT_KEYS if k in settings}


class RandomStateCheckpoint(pl.Callback):
    """Keeps the global random states (torch, NumPy, Python) in Lightning checkpoints and puts
    them back when a fit resumes from one, so the shuffling and augmentation after a resume are
    those of an uninterrupted fit. They are restored as the checkpoint loads: Lightning creates
    the resumed epoch's data iterator (which draws the shuffle) right after, before any epoch
    hook. Validation draws nothing after the save, so the states saved at an epoch's end are
    those the next epoch starts with. Stored as tensors and lists, so checkpoints still load
    with `weights_only=True`."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        version, state, gauss_next = random.getstate()
        checkpoint["random_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, list(state), gauss_next],
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: Any, checkpoint: dict) -> None:
        states = checkpoint.get("random_states")
        if states is None:
            return
        torch.set_rng_state(states["torch"])
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, state, gauss_next = states["python"]
        random.setstate((version, tuple(state), gauss_next))


def instantiate_callbacks(callbacks_cfg: Mapping[str, Any] | None, ckpt_dir: str) -> list:
    """The `callbacks/` group's callbacks; a `ModelCheckpoint` writes to `ckpt_dir`. Raises
    ValueError naming the group when it has no ModelCheckpoint (the best epoch could not be
    kept)."""
    callbacks = []
    for name, node in (plain_config(callbacks_cfg) or {}).items():
        if get_class(node["_target_"]) is ModelCheckpoint:
            callbacks.append(instantiate(node, dirpath=ckpt_dir))
        else:
            callbacks.append(instantiate(node))
        log.debug("teacher callback %s: %s", name, type(callbacks[-1]).__name__)
    if not any(isinstance(c, ModelCheckpoint) for c in callbacks):
        raise ValueError(
            "callbacks: the teacher's callbacks need a ModelCheckpoint (callbacks=teacher keeps "
            f"the best validation kappa); got {list(plain_config(callbacks_cfg) or {})}"
        )
    return callbacks


def readable_checkpoint(path: Path) -> bool:
    """Whether `path` is a whole checkpoint; one a kill cut short is removed (with a warning),
    and the fit starts over."""
    if not path.is_file():
        return False
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or garbled: any unpickling error
        log.warning("%s is not a readable checkpoint (%s); starting this fit over", path, err)
        shutil.rmtree(path.parent, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return False
    return True
