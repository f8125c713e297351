"""The teacher: fitted on the training persons, selected on the validation persons' kappa.

Also the label teachers (the teacher's architecture and settings on disjoint groups of training
persons), whose mean probabilities are the stimuli's soft labels. Both are cached in the
artifact store, member `i` of an ensemble as `member_file(i)`.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor, nn

from stimuli.classifier import Classifier, predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.metrics import score
from stimuli.models import build_network, load_member, member_file
from stimuli.store import ArtifactStore
from stimuli.training import (
    RandomStateCheckpoint,
    balanced_class_weights,
    instantiate_callbacks,
    make_trainer,
    readable_checkpoint,
)

log = logging.getLogger(__name__)


class TeacherEnsemble(nn.Module):
    """Teachers of one architecture trained with different seeds, answering together.

    `forward` returns the log of the members' mean softmax: logits whose softmax is the averaged
    probability, so synthesis, distillation targets and metrics see the ensemble as one model.
    `embed` concatenates the members' embeddings. Synthesis averages the BatchNorm-matching term
    over members (`n_members`), so its weight means the same as for one teacher.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @property
    def n_members(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor) -> Tensor:
        probs = torch.stack([m(x).softmax(dim=1) for m in self.members]).mean(dim=0)
        return probs.clamp_min(1e-12).log()

    def embed(self, x: Tensor) -> Tensor:
        return torch.cat([m.embed(x) for m in self.members], dim=1)


def build_teacher(
    model_cfg: DictConfig | dict, n_models: int, n_chans: int, n_outputs: int, n_times: int
) -> nn.Module:
    """The untrained teacher of a run: one network, or a `TeacherEnsemble` of `n_models`."""
    members = [build_network(model_cfg, n_chans, n_outputs, n_times) for _ in range(n_models)]
    return members[0] if n_models == 1 else TeacherEnsemble(members)


def load_teacher(
    path: Path, model_cfg: DictConfig | dict, teacher_cfg: DictConfig | dict, shape: tuple
) -> nn.Module:
    """A saved teacher (`teacher.pt` of a run) in eval mode; `shape` = (n_chans, n_outputs,
    n_times)."""
    model = build_teacher(model_cfg, int(teacher_cfg.get("n_models", 1)), *shape)
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return model.eval()


def evaluate_splits(model: torch.nn.Module, dm: CohortDataModule) -> dict[str, dict[str, float]]:
    report = {}
    for split, ds in dm.datasets.items():  # batch by batch from the memory-mapped cache
        report[split] = score(predict_proba(model, ds.view()), ds.labels())
    return report


def train_teacher(
    dm: CohortDataModule,
    model_cfg: DictConfig,
    cfg: DictConfig,
    seed: int,
    logger=False,
    progress=False,
    trainer_cfg: Mapping[str, Any] | None = None,
    callbacks_cfg: Mapping[str, Any] | None = None,
    resume_dir: Path | None = None,
) -> tuple[torch.nn.Module, dict]:
    """The teacher's architecture fitted on `dm`'s training persons; `callbacks_cfg` (the
    `callbacks/` group) must hold one `ModelCheckpoint`, whose best epoch is kept.

    With `resume_dir`, checkpoints (the best epoch's and the last one, with the random states)
    are kept there, and a fit killed before it ended resumes from the last one: the same model
    as an uninterrupted fit. Without it they live in a temporary folder."""
    pl.seed_everything(seed, workers=True)
    model = build_network(model_cfg, dm.n_chans, dm.n_classes, dm.n_times)
    y_train = dm.datasets["train"].labels()
    module = Classifier(
        model,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        class_weights=balanced_class_weights(y_train, dm.n_classes) if cfg.balanced else None,
        max_shift=cfg.max_shift,
        amp_jitter=cfg.amp_jitter,
        adv_eps=float(cfg.get("adv_eps", 0.0)),
    )
    with ExitStack() as stack:
        if resume_dir is None:
            ckpt_dir = stack.enter_context(tempfile.TemporaryDirectory())
        else:
            ckpt_dir = str(resume_dir)
            Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
        callbacks = [*instantiate_callbacks(callbacks_cfg, ckpt_dir), RandomStateCheckpoint()]
        best = next(c for c in callbacks if isinstance(c, ModelCheckpoint))
        best.save_last = True
        last = Path(ckpt_dir) / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}.ckpt"
        resume = str(last) if resume_dir is not None and readable_checkpoint(last) else None
        if resume:
            log.info("resuming the teacher's fit (seed %d) from %s", seed, last)
        trainer = make_trainer(
            trainer_cfg,
            max_epochs=cfg.max_epochs,
            callbacks=callbacks,
            logger=logger,
            progress=progress,
        )
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
        if best.best_model_path:
            state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
            module.load_state_dict(state["state_dict"])
        epochs = trainer.current_epoch
    model = module.model.eval()
    report = evaluate_splits(model, dm)
    report["epochs"] = epochs
    report["best_epoch_val_kappa"] = float(best.best_model_score or float("nan"))
    return model, report


def person_groups(persons: np.ndarray, n_groups: int, seed: int) -> list[np.ndarray]:
    """The distinct `persons` dealt, in an order drawn with `seed`, into `n_groups` disjoint groups
    whose sizes differ by at most one."""
    persons = np.unique(persons)
    if not 1 <= n_groups <= len(persons):
        raise ValueError(
            f"cannot deal {len(persons)} training persons into {n_groups} groups; "
            "soft_labels.teachers must be between 1 and the number of training persons"
        )
    order = np.random.default_rng(seed).permutation(persons)
    return [np.sort(g) for g in np.array_split(order, n_groups)]


def restrict_training_persons(dm: CohortDataModule, persons: np.ndarray) -> CohortDataModule:
    """A shallow copy of `dm` whose training split holds only the windows of `persons` (the other
    splits and the normalization are shared)."""
    train = copy.copy(dm.datasets["train"])
    train.indices = train.indices[np.isin(train.person[train.indices], persons)]
    sub = copy.copy(dm)
    sub.datasets = {**dm.datasets, "train": train}
    return sub


def _loaded(folder: Path, model_cfg: Any, n: int, shape: tuple[int, int, int]) -> list[nn.Module]:
    return [load_member(folder / member_file(i), model_cfg, shape) for i in range(n)]


def _fit_members(
    folder: Path,
    resume: Path,
    runs: list[tuple[CohortDataModule, int, str]],
    logger_for: Callable[[str], Any],
    **fit_args: Any,
) -> tuple[list[nn.Module], list[dict]]:
    """Member i fitted on `runs[i]` = (data, seed, logger name) with `fit_args` (model, settings,
    trainer, callbacks, progress), saved as `member_file(i)` in `folder`, resumable from
    `resume/member{i}` after a kill."""
    members, reports = [], []
    for i, (data, seed, name) in enumerate(runs):
        model, report = train_teacher(
            data, seed=seed, logger=logger_for(name), resume_dir=resume / f"member{i}", **fit_args
        )
        torch.save(model.state_dict(), folder / member_file(i))
        members.append(model)
        reports.append(report)
    return members, reports


def teacher_ensemble(
    dm: CohortDataModule,
    model_cfg: DictConfig,
    cfg: DictConfig,
    seed: int,
    store: ArtifactStore,
    key: str,
    *,
    trainer_cfg: Mapping[str, Any] | None = None,
    callbacks_cfg: Mapping[str, Any] | None = None,
    logger_for: Callable[[str], Any] = lambda name: False,
    progress: bool = False,
) -> tuple[nn.Module, dict, bool]:
    """The frozen teacher, trained once per `key`: one network, or with `cfg.n_models` > 1 a
    `TeacherEnsemble` of networks trained with seeds `seed`, `seed + 1`, ... Returns (model in
    eval mode, report, whether this call trained it). `logger_for(name)` gives each training
    its Lightning logger."""
    n_models = int(cfg.get("n_models", 1))
    resume = store.resume_dir("teacher", key)
    runs = [(dm, seed + i, "teacher" + (f"{i}" if i else "")) for i in range(n_models)]

    def write(folder: Path) -> dict:
        members, reports = _fit_members(
            folder,
            resume,
            runs,
            logger_for,
            model_cfg=model_cfg,
            cfg=cfg,
            progress=progress,
            trainer_cfg=trainer_cfg,
            callbacks_cfg=callbacks_cfg,
        )
        if n_models == 1:
            return reports[0]
        report = evaluate_splits(TeacherEnsemble(members).eval(), dm)
        report["members"] = reports
        return report

    entry = store.entry("teacher", key, write)
    shutil.rmtree(resume, ignore_errors=True)  # the entry is complete: nothing to resume
    members = _loaded(entry.path, model_cfg, n_models, (dm.n_chans, dm.n_classes, dm.n_times))
    model = members[0] if n_models == 1 else TeacherEnsemble(members).eval()
    return model, entry.meta, entry.built


def label_teacher_ensemble(
    dm: CohortDataModule,
    model_cfg: DictConfig,
    cfg: DictConfig,
    n_teachers: int,
    seed: int,
    store: ArtifactStore,
    key: str,
    *,
    trainer_cfg: Mapping[str, Any] | None = None,
    callbacks_cfg: Mapping[str, Any] | None = None,
    logger_for: Callable[[str], Any] = lambda name: False,
    progress: bool = False,
) -> tuple[TeacherEnsemble, dict, bool]:
    """Subsample and aggregate: `n_teachers` teachers of the teacher's architecture and settings
    `cfg`, each trained on one of as many disjoint groups of training persons (dealt with
    `seed`; teacher g trains with `seed + g`). A training person moves one of them, so their
    mean carries less of any one person than the teacher, which saw them all. Returns (the
    ensemble, report with `groups`, whether this call trained it)."""
    train = dm.datasets["train"]
    groups = person_groups(train.person[train.indices], n_teachers, seed)

    resume = store.resume_dir("label_teachers", key)
    runs = [
        (restrict_training_persons(dm, p), seed + g, f"label_teacher{g}")
        for g, p in enumerate(groups)
    ]

    def write(folder: Path) -> dict:
        _, reports = _fit_members(
            folder,
            resume,
            runs,
            logger_for,
            model_cfg=model_cfg,
            cfg=cfg,
            progress=progress,
            trainer_cfg=trainer_cfg,
            callbacks_cfg=callbacks_cfg,
        )
        reports = [{**r, "n_persons": len(p)} for r, p in zip(reports, groups, strict=True)]
        return {"members": reports}

    entry = store.entry("label_teachers", key, write)
    shutil.rmtree(resume, ignore_errors=True)
    shape = (dm.n_chans, dm.n_classes, dm.n_times)
    ensemble = TeacherEnsemble(_loaded(entry.path, model_cfg, n_teachers, shape)).eval()
    report = {**entry.meta, "persons_per_teacher": [len(g) for g in groups]}
    return ensemble, report, entry.built
