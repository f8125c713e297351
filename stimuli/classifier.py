"""One LightningModule for every network trained here: teacher, identity model, neural students.

Targets are class indices, or `(N, K)` probability vectors when learning from soft labels
(knowledge distillation from the teacher's outputs on stimuli).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import Tensor, nn

from stimuli.augment import random_amplitude_scale, random_time_shift
from stimuli.metrics import binary_metrics


class Classifier(LightningModule):
    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        class_weights: Tensor | None = None,
        max_shift: int = 0,
        amp_jitter: float = 0.0,
        temperature: float = 1.0,
        binary: bool = True,
        schedule: str = "cosine",
        mixup: float = 0.0,
        adv_eps: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay
        self.max_shift, self.amp_jitter = max_shift, amp_jitter
        self.temperature = temperature
        self.schedule = schedule
        self.mixup = mixup  # Beta(mixup, mixup) mixing of pairs of windows and their targets
        # Adversarial training (FGSM with a random start, Wong et al. 2020) within an L-inf ball
        # of this radius in input units: a robust network has gradients that change what the
        # network actually uses, so inputs optimised against it cannot fool it with noise.
        self.adv_eps = adv_eps
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.binary = binary
        if binary:
            self.val_metrics = binary_metrics("val/")
            self.test_metrics = binary_metrics("test/")

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def _augment(self, x: Tensor) -> Tensor:
        if self.max_shift:
            x = random_time_shift(x, self.max_shift)
        if self.amp_jitter:
            x = random_amplitude_scale(x, self.amp_jitter)
        return x

    def _adversarial(self, x: Tensor, target: Tensor) -> Tensor:
        eps = self.adv_eps
        delta = (torch.rand_like(x) * 2 - 1) * eps
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(self(x + delta), target)
            (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta + 1.25 * eps * grad.sign()).clamp(-eps, eps)
        return (x + delta).detach()

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        if target.ndim == 2:  # soft labels: KL to the tempered targets, scaled by T^2 (Hinton)
            t = self.temperature
            soft = F.softmax(torch.log(target.clamp_min(1e-8)) / t, dim=1)
            return F.kl_div(F.log_softmax(logits / t, 1), soft, reduction="batchmean") * t * t
        return F.cross_entropy(logits, target, weight=self.class_weights)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, target = batch[0], batch[1]
        x = self._augment(x)
        if self.adv_eps > 0:
            x = self._adversarial(x, target)
        loss = self._mixup_loss(x, target) if self.mixup > 0 else self.loss(self(x), target)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _mixup_loss(self, x: Tensor, target: Tensor) -> Tensor:
        lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
        perm = torch.randperm(len(x), device=x.device)
        logits = self(lam * x + (1 - lam) * x[perm])
        return lam * self.loss(logits, target) + (1 - lam) * self.loss(logits, target[perm])

    def _eval_step(self, batch, metrics, prefix: str) -> None:
        x, y = batch[0], batch[1]
        logits = self(x)
        self.log(f"{prefix}loss", F.cross_entropy(logits, y), on_epoch=True, on_step=False)
        if self.binary:
            metrics.update(logits.softmax(1)[:, 1], y)
        else:
            acc = (logits.argmax(1) == y).float().mean()
            self.log(f"{prefix}acc", acc, on_epoch=True, on_step=False)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics if self.binary else None, "val/")

    def on_validation_epoch_end(self) -> None:
        if self.binary:
            self.log_dict(self.val_metrics.compute(), prog_bar=True)
            self.val_metrics.reset()

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics if self.binary else None, "test/")

    def on_test_epoch_end(self) -> None:
        if self.binary:
            self.log_dict(self.test_metrics.compute())
            self.test_metrics.reset()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.schedule != "cosine":
            return opt
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(total, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _batch(x: Tensor | np.ndarray, i: int, batch_size: int, device: torch.device) -> Tensor:
    """Rows `i:i+batch_size` as a float32 tensor on `device`; a read-only array (a memory map)
    is copied one batch at a time, never as a whole."""
    part = x[i : i + batch_size]
    if isinstance(part, np.ndarray):
        part = np.asarray(part, dtype=np.float32)  # a view when it already is float32
        part = torch.from_numpy(part if part.flags.writeable else part.copy())
    return part.to(device)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


@torch.no_grad()
def predict_proba(model: nn.Module, x: Tensor | np.ndarray, batch_size: int = 512) -> Tensor:
    """Softmax outputs in eval mode, batched on the model's device, returned on the CPU; the
    model's mode is restored afterwards."""
    was_training, device = model.training, _device(model)
    model.eval()
    out = torch.cat(
        [
            model(_batch(x, i, batch_size, device)).softmax(1).cpu()
            for i in range(0, len(x), batch_size)
        ]
    )
    model.train(was_training)
    return out


@torch.no_grad()
def embed(model: nn.Module, x: Tensor | np.ndarray, batch_size: int = 512) -> Tensor:
    was_training, device = model.training, _device(model)
    model.eval()
    out = torch.cat(
        [model.embed(_batch(x, i, batch_size, device)).cpu() for i in range(0, len(x), batch_size)]
    )
    model.train(was_training)
    return out
