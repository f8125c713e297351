"""A registered network as a student: `fit(x, y, soft=None)` / `predict_proba(x)` on arrays.

Real-data and stimulus-data students get identical settings (steps, batch, optimizer,
augmentation); only the arrays differ. `soft` (the teacher's probabilities on the stimuli) turns
on distillation at `temperature`.

`trainer` holds Lightning placement settings (accelerator, devices, strategy, precision; the
`trainer/` group) for `stimuli.training.make_trainer`; `logger` is the Lightning logger (or
loggers, or False) that `fit` trains with. The logger belongs to the job that trains the
student, so it is not saved with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from stimuli.classifier import Classifier, predict_proba
from stimuli.data.datasets import RowView
from stimuli.models import build_model
from stimuli.students.base import Student
from stimuli.training import array_loader, balanced_class_weights, make_trainer


class NeuralStudent(Student):
    def __init__(
        self,
        model: str | Callable[..., torch.nn.Module],
        model_kwargs: dict[str, Any] | None = None,
        steps: int = 1500,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_shift: int = 40,
        amp_jitter: float = 0.1,
        temperature: float = 2.0,
        balanced: bool = True,
        seed: int = 0,
        fs: float | None = None,
        progress: bool = False,
        trainer: dict[str, Any] | None = None,
        mixup: float = 0.0,
        logger: Any = False,
    ) -> None:
        del fs  # a network learns from the samples alone
        self.model_name = model
        self.model_kwargs = dict(model_kwargs or {})
        self.steps, self.batch_size = steps, batch_size
        self.lr, self.weight_decay = lr, weight_decay
        self.max_shift, self.amp_jitter = max_shift, amp_jitter
        self.temperature = temperature
        self.balanced = balanced
        self.seed = seed
        self.progress = progress
        self.mixup = mixup
        self.trainer = dict(trainer or {})  # Lightning Trainer overrides (accelerator, DDP)
        self.logger = logger
        self.model_: torch.nn.Module | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "logger": False}  # a job's logger is not part of the student

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"logger": False, **state})  # files saved before `logger` existed

    @property
    def name(self) -> str:
        if isinstance(self.model_name, str):
            return self.model_name
        return getattr(self.model_name, "func", self.model_name).__name__

    def fit(
        self, x: np.ndarray | RowView, y: np.ndarray, soft: np.ndarray | None = None
    ) -> NeuralStudent:
        """`x`: an array or a `RowView` (e.g. a split's `WindowView`), which is read batch by
        batch, in the same batches as its array."""
        if not isinstance(x, RowView):
            x = np.asarray(x, dtype=np.float32)
        if len(x.shape) != 3:
            raise ValueError(f"windows must be 3-D (N, n_chans, n_times), got shape {x.shape}")
        y = np.asarray(y, dtype=np.int64)
        if len(np.unique(y)) < 2:
            raise ValueError("a student needs training windows of both classes")
        pl.seed_everything(self.seed, workers=True)
        n_classes = soft.shape[1] if soft is not None else int(y.max()) + 1
        if isinstance(self.model_name, str):
            self.model_ = build_model(
                self.model_name, x.shape[1], n_classes, x.shape[2], **self.model_kwargs
            )
        else:  # a network factory with the shape signature, e.g. a partial `conf/model` entry
            self.model_ = self.model_name(
                n_chans=x.shape[1], n_outputs=n_classes, n_times=x.shape[2], **self.model_kwargs
            )
        weights = balanced_class_weights(y, n_classes) if self.balanced else None
        module = Classifier(
            self.model_,
            lr=self.lr,
            weight_decay=self.weight_decay,
            class_weights=weights,
            max_shift=self.max_shift,
            amp_jitter=self.amp_jitter,
            temperature=self.temperature,
            mixup=self.mixup,
        )
        target = soft if soft is not None else y
        loader = array_loader(x, target, self.batch_size, shuffle=True, seed=self.seed)
        trainer = make_trainer(
            self.trainer, max_steps=self.steps, progress=self.progress, logger=self.logger
        )
        trainer.fit(module, loader)
        self.model_.eval()
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("fit the student first")
        return predict_proba(self.model_, torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()
