"""The stages that build the mechanism: data, teacher, identity model, stimuli, soft labels.

Each takes the job's `RunContext` and the artifacts it needs, and returns a `StageOutput`:
its artifacts and its blocks of `results.json` (the cache state under `cache`).
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from stimuli.classifier import predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.identity import identity_ensemble, person_centroids
from stimuli.io import atomic_path, write_json
from stimuli.metrics import score
from stimuli.parallel import worker_jobs
from stimuli.pipeline.context import RunContext, StageOutput
from stimuli.store import Entry
from stimuli.synthesis.competitor import fit_competitor
from stimuli.synthesis.shards import (
    SynthesisInputs,
    load_stimuli,
    shard_indices,
    stimuli_entry,
    stimulus_shard,
)
from stimuli.teacher import label_teacher_ensemble, teacher_ensemble
from stimuli.training import placement

log = logging.getLogger(__name__)


def build_datamodule(cfg, progress: bool = True) -> CohortDataModule:
    dm = instantiate(cfg.data, progress=progress)
    dm.prepare_data()
    dm.setup()
    return dm


def data_stage(ctx: RunContext) -> StageOutput:
    dm = build_datamodule(ctx.cfg, ctx.progress)
    summary = dm.summary()
    write_json(ctx.out / "data_summary.json", summary)
    if dm.norm_stats:
        write_json(ctx.out / "normalization.json", dm.norm_stats)
    log.info(
        "data: %d records, %d persons, %d windows (train/val/test %s)",
        summary["n_records"],
        summary["n_persons"],
        summary["n_windows"],
        "/".join(str(summary["splits"][s]["windows"]) for s in ("train", "val", "test")),
    )
    if "attacker" in summary:
        log.info(
            "data: %d windows of %d nights withheld for the other-night attacker",
            summary["attacker"]["windows"],
            len(summary["attacker"]["records"]),
        )
    return StageOutput({"dm": dm}, {"data": summary})


def _state(built: bool, made: str = "trained") -> str:
    return made if built else "cached"


def teacher_stage(ctx: RunContext, dm: CohortDataModule) -> StageOutput:
    cfg = ctx.cfg
    teacher, report, built = teacher_ensemble(
        dm,
        cfg.model,
        cfg.teacher,
        ctx.seed,
        ctx.store,
        ctx.keys["teacher"],
        trainer_cfg=cfg.trainer,
        callbacks_cfg=cfg.callbacks,
        logger_for=ctx.tracker.trainer_logger,
        progress=ctx.progress,
    )
    with atomic_path(ctx.out / "teacher.pt") as tmp:
        torch.save(teacher.state_dict(), tmp)
    return StageOutput(
        {"teacher": teacher}, {"teacher": dict(report), "cache": {"teacher": _state(built)}}
    )


def identity_stage(ctx: RunContext, dm: CohortDataModule) -> StageOutput:
    model, report, built = identity_ensemble(
        dm,
        ctx.cfg.identity,
        ctx.seed + 1,
        ctx.store,
        ctx.keys["identity"],
        trainer_cfg=placement(ctx.cfg.trainer),
        logger=ctx.tracker.trainer_logger("identity"),
        progress=ctx.progress,
    )
    return StageOutput(
        {"identity": model}, {"identity_model": report, "cache": {"identity": _state(built)}}
    )


def synthesis_inputs(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, identity: nn.Module
) -> SynthesisInputs:
    cfg = ctx.cfg
    space = cfg.synthesis.get("centroid_space", "teacher")

    @functools.cache
    def centroids() -> torch.Tensor:
        return person_centroids(teacher if space == "teacher" else identity, dm)

    def competitor(x, y, soft, index: int) -> nn.Module:
        return fit_competitor(
            x,
            y,
            soft,
            model_cfg=cfg.model,
            student_defaults=OmegaConf.to_container(cfg.student_defaults, resolve=True),
            steps=int(cfg.synthesis.competitor_steps),
            seed=ctx.seed + index,
        )

    return SynthesisInputs(
        teacher, identity, (dm.n_chans, dm.n_times, dm.n_classes), centroids, competitor
    )


def synthesis_settings(ctx: RunContext) -> dict:
    synth = OmegaConf.to_container(ctx.cfg.synthesis, resolve=True)
    synth["progress_bar"] = ctx.progress and synth.get("progress_bar", True)
    return synth


def stimuli_stage(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, identity: nn.Module
) -> StageOutput:
    """All stimuli (merged shards), or with `synthesis_shards=[a, b]` only this job's shards."""
    synth = synthesis_settings(ctx)
    inputs = synthesis_inputs(ctx, dm, teacher, identity)
    key, trainer = ctx.keys["stimuli"], placement(ctx.cfg.trainer)
    chosen = ctx.cfg.get("synthesis_shards")
    if chosen is not None:  # one job's part of a sharded synthesis
        indices = shard_indices(synth, chosen)
        done = [
            stimulus_shard(ctx.store, key, i, synth, inputs, seed=ctx.seed, trainer=trainer)
            for i in indices
        ]
        n = sum(e.meta["n"] for e in done)
        return StageOutput({"stimuli": None}, {"stimuli": {"shards": indices, "n": n}})
    jobs = worker_jobs(ctx.cfg.get("jobs"), ctx.cfg.trainer)
    entry = stimuli_entry(ctx.store, key, synth, inputs, seed=ctx.seed, trainer=trainer, jobs=jobs)
    stim = load_stimuli(entry)
    with atomic_path(ctx.out / "stimuli.npz") as tmp:
        np.savez(tmp, **{k: stim[k] for k in ("x", "labels", "teacher_probs")})
    meta = dict(entry.meta)
    loss_history = meta.pop("loss_history", None)
    return StageOutput(
        {"stimuli": stim, "loss_history": loss_history},
        {"stimuli": meta, "cache": {"stimuli": _state(entry.built, "synthesized")}},
    )


def shard_entry(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, identity: nn.Module, index: int
) -> Entry:
    """Shard `index` of this job's stimuli (cached or synthesized), e.g. to probe a setting on
    one shard before a full run."""
    inputs = synthesis_inputs(ctx, dm, teacher, identity)
    return stimulus_shard(
        ctx.store,
        ctx.keys["stimuli"],
        index,
        synthesis_settings(ctx),
        inputs,
        seed=ctx.seed,
        trainer=placement(ctx.cfg.trainer),
    )


def n_label_teachers(cfg) -> int:
    """`soft_labels.teachers` (1, the teacher itself, for configs made before the setting)."""
    return int((cfg.get("soft_labels") or {}).get("teachers", 1))


def label_teacher_settings(cfg) -> DictConfig:
    """The label teachers' training settings: the teacher's, with `soft_labels.adv_eps` as
    their adversarial radius when it is set (null, the default: the teacher's). The label
    teachers are never inverted, only asked for probabilities, so `0` skips the adversarial
    step and most of their time, but their soft labels on the stimuli teach the students less
    (README, "What a run trains")."""
    adv_eps = (cfg.get("soft_labels") or {}).get("adv_eps")
    if adv_eps is None:
        return cfg.teacher
    return OmegaConf.merge(cfg.teacher, {"adv_eps": float(adv_eps)})


def soft_labels_stage(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, stimuli: dict
) -> StageOutput:
    """The stimuli's soft labels (what students distil from, and the bundle's `soft`): the
    teacher's probabilities, or with `soft_labels.teachers` k > 1 the mean probabilities of k
    label teachers, each trained on its own 1/k of the training persons."""
    cfg, k = ctx.cfg, n_label_teachers(ctx.cfg)
    if k == 1:
        return StageOutput({"soft_labels": stimuli["teacher_probs"], "label_teachers": None})
    ensemble, report, built = label_teacher_ensemble(
        dm,
        cfg.model,
        label_teacher_settings(cfg),
        k,
        ctx.seed + int(cfg.soft_labels.seed_offset),
        ctx.store,
        ctx.keys["label_teachers"],
        trainer_cfg=cfg.trainer,
        callbacks_cfg=cfg.callbacks,
        logger_for=ctx.tracker.trainer_logger,
        progress=ctx.progress,
    )
    test = dm.datasets["test"]
    soft = predict_proba(ensemble, torch.from_numpy(stimuli["x"])).numpy().astype(np.float32)
    agree = soft.argmax(1) == stimuli["teacher_probs"].argmax(1)
    block = {
        "teachers": k,
        "persons_per_teacher": report["persons_per_teacher"],
        "members_test": [m["test"] for m in report["members"]],
        "members_val_kappa": [m["best_epoch_val_kappa"] for m in report["members"]],
        "test": score(predict_proba(ensemble, test.view()), test.labels()),
        "agreement_with_teacher": float(agree.mean()),
    }
    return StageOutput(
        {"soft_labels": soft, "label_teachers": ensemble},
        {"soft_labels": block, "cache": {"label_teachers": _state(built)}},
    )
