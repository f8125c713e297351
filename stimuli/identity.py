"""Stage `identity`: a network that names the person a window comes from.

Trained on the training persons' windows, all but the last `holdout` fraction of each night; its
accuracy on those held-out time slices says how identifying the windows are. Identity inhibition
uses it during synthesis, and the privacy audit trains its own (different) one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from stimuli.classifier import Classifier, embed, predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.data.datasets import WindowView
from stimuli.data.windows import early_in_night
from stimuli.models import build_network, load_member, member_file
from stimuli.store import ArtifactStore
from stimuli.training import array_loader, make_trainer


def identity_arrays(
    dm: CohortDataModule, holdout: float, lazy: bool = False
) -> dict[str, np.ndarray | WindowView]:
    """Training persons' windows with person labels 0…P-1, split in time within each night.
    With `lazy`, `x` is a `WindowView` read from the cache batch by batch."""
    ds = dm.datasets["train"]
    x = ds.view() if lazy else ds.arrays()[0]
    person = np.asarray(ds.person[ds.indices])
    record = np.asarray(dm.cache.record_index[ds.indices])
    segment = np.asarray(dm.cache.segment_index[ds.indices])
    mapping = dm.train_person_index()
    label = np.array([mapping[p] for p in person], dtype=np.int64)
    late = ~early_in_night(record, segment, holdout)
    return {"x": x, "y": label, "fit": ~late, "held": late, "n_persons": len(mapping)}


class IdentityEnsemble(nn.Module):
    """Several person-ID networks judged together by identity inhibition.

    `forward` stacks the members' logits along the batch, so a loss averaged over rows is the
    mean of the members' losses: each member must be unsure, not only their average (meant to
    carry inhibition over to other judges; measured in experiments/README.md). `embed` is the
    first member's.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([m(x) for m in self.members])

    def embed(self, x: Tensor) -> Tensor:
        return self.members[0].embed(x)


def identity_ensemble(
    dm: CohortDataModule,
    cfg: DictConfig,
    seed: int,
    store: ArtifactStore,
    key: str,
    *,
    trainer_cfg: Mapping[str, Any] | None = None,
    logger: Any = False,
    progress: bool = False,
) -> tuple[nn.Module, dict, bool]:
    """The person-ID model of identity inhibition, trained once per `key` and cached:
    `cfg.model` and each of `cfg.ensemble` (an `IdentityEnsemble` when there are several).
    Returns (model in eval mode, report, whether this call trained it)."""

    def write(folder: Path) -> dict:
        members, report = train_identity_ensemble(
            dm, cfg, seed, trainer_cfg=trainer_cfg, progress=progress, logger=logger
        )
        for i, model in enumerate(members):
            torch.save(model.state_dict(), folder / member_file(i))
        return report

    entry = store.entry("identity", key, write)
    configs = [cfg.model, *(cfg.get("ensemble") or [])]
    shape = (dm.n_chans, entry.meta["n_persons"], dm.n_times)
    members = [load_member(entry.path / member_file(i), c, shape) for i, c in enumerate(configs)]
    model = members[0] if len(members) == 1 else IdentityEnsemble(members).eval()
    return model, entry.meta, entry.built


def train_identity_ensemble(
    dm: CohortDataModule,
    cfg: DictConfig,
    seed: int,
    trainer_cfg: Mapping[str, Any] | None = None,
    progress: bool = False,
    logger: Any = False,
) -> tuple[list[torch.nn.Module], dict]:
    """`cfg.model` and each of `cfg.ensemble` (more model configs, default none), each with its
    own seed; the report is the first model's, with every member's accuracy."""
    configs = [cfg.model, *(cfg.get("ensemble") or [])]
    members, reports = [], []
    for i, model_cfg in enumerate(configs):
        model, report = train_identity(
            dm, model_cfg, cfg, seed + 10 * i, trainer_cfg, progress, logger
        )
        members.append(model)
        reports.append(report)
    report = dict(reports[0])
    if len(members) > 1:
        report["member_acc"] = [r["acc"] for r in reports]
    return members, report


def train_identity(
    dm: CohortDataModule,
    model_cfg: DictConfig,
    cfg: DictConfig,
    seed: int,
    trainer_cfg: Mapping[str, Any] | None = None,
    progress: bool = False,
    logger: Any = False,
) -> tuple[torch.nn.Module, dict]:
    pl.seed_everything(seed, workers=True)
    data = identity_arrays(dm, cfg.holdout, lazy=True)
    model = build_network(model_cfg, dm.n_chans, data["n_persons"], dm.n_times)
    module = Classifier(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        binary=False,
        max_shift=cfg.max_shift,
        adv_eps=float(cfg.get("adv_eps", 0.0)),
    )
    fit = data["fit"]
    x_fit = data["x"].subset(np.flatnonzero(fit))
    loader = array_loader(x_fit, data["y"][fit], cfg.batch_size, shuffle=True, seed=seed)
    trainer = make_trainer(trainer_cfg, max_steps=cfg.steps, progress=progress, logger=logger)
    trainer.fit(module, loader)
    model = module.model.eval()
    held = data["held"]
    probs = predict_proba(model, data["x"].subset(np.flatnonzero(held)))
    acc = float((probs.argmax(1).numpy() == data["y"][held]).mean())
    return model, {
        "acc": round(acc, 4),
        "n_persons": data["n_persons"],
        "chance": round(1 / data["n_persons"], 4),
        "n_held_out": int(held.sum()),
    }


def person_centroids(model: torch.nn.Module, dm: CohortDataModule) -> torch.Tensor:
    """Mean embedding of each training person's windows in `model`'s feature space, `(P, D)`."""
    ds = dm.datasets["train"]
    mapping = dm.train_person_index()
    label = torch.tensor([mapping[p] for p in np.asarray(ds.person[ds.indices])])
    feats = embed(model, ds.view())
    return torch.stack([feats[label == i].mean(0) for i in range(len(mapping))])
