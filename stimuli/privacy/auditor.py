"""The auditor's own person-ID network, trained like the identity model but with another
architecture and seed, so identity inhibition during synthesis cannot simply fool its judge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from stimuli.classifier import Classifier, predict_proba
from stimuli.data.datasets import RowView
from stimuli.models import build_network
from stimuli.training import array_loader, balanced_class_weights, make_trainer


def train_person_model(
    x: np.ndarray | RowView,
    person: np.ndarray,
    n_persons: int,
    cfg: Mapping[str, Any],
    seed: int,
    progress: bool = False,
) -> torch.nn.Module:
    """A person-ID network (`cfg`: the `privacy.auditor` node) fitted on windows `x` (an array
    or a `RowView` of one), labels 0…n_persons-1; in eval mode."""
    pl.seed_everything(seed, workers=True)
    model = build_network(cfg["model"], x.shape[1], n_persons, x.shape[2])
    weights = balanced_class_weights(person, n_persons) if cfg.get("balanced", True) else None
    module = Classifier(
        model,
        lr=float(cfg["lr"]),
        weight_decay=float(cfg["weight_decay"]),
        class_weights=weights,
        max_shift=int(cfg.get("max_shift", 0)),
        binary=False,
    )
    loader = array_loader(x, person, int(cfg["batch_size"]), shuffle=True, seed=seed)
    trainer = make_trainer(
        cfg.get("trainer"), max_steps=int(cfg["steps"]), progress=progress, single_device=True
    )
    trainer.fit(module, loader)
    return module.model.eval()


def posteriors(model: torch.nn.Module, x: np.ndarray | RowView) -> np.ndarray:
    """The person posteriors of windows `x` (an array, a memory map or a `RowView`), read one
    batch at a time."""
    return predict_proba(model, x).numpy()


def train_auditor(
    real, cfg: Mapping[str, Any], seed: int, progress: bool = False
) -> torch.nn.Module:
    """A person-ID model on the early part of each *training* person's nights (`real`: a
    `stimuli.privacy.real.RealWindows`), as experiments/shard_probe.py probes single shards with;
    the criteria's auditor sees every candidate instead (`stimuli.pipeline.assess_stages`)."""
    a = cfg["auditor"]
    x, label = real.x_train[real.fit], real.label[real.fit]
    return train_person_model(x, label, real.n_persons, a, seed + int(a["seed_offset"]), progress)
