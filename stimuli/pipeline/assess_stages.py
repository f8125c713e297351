"""The stages that judge and ship the mechanism: students, evaluation, privacy audit, release.

Each takes the job's `RunContext` and the artifacts it needs and returns a `StageOutput`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from stimuli.classifier import predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.io import write_json
from stimuli.metrics import score
from stimuli.models import MODELS
from stimuli.pipeline.build_stages import n_label_teachers
from stimuli.pipeline.context import RunContext, StageOutput
from stimuli.privacy import audit_privacy
from stimuli.release.forbidden import ForbiddenInfo
from stimuli.release.stage import (
    forbidden_for_release,
    make_datacard,
    release_arrays,
    releases_soft_labels,
    write_checked_release,
)
from stimuli.students.fit import fit_students, score_students, student_factories
from stimuli.training import placement

log = logging.getLogger(__name__)


def student_variants(
    dm: CohortDataModule, stimuli: dict, soft_labels: np.ndarray | None
) -> dict[str, tuple]:
    """`real` (training windows), `stimuli` (hard labels) and, given soft labels, `stimuli_kd`."""
    x_train, y_train, _ = dm.datasets["train"].arrays()
    variants = {
        "real": (x_train, y_train, None),
        "stimuli": (stimuli["x"], stimuli["labels"], None),
    }
    if soft_labels is not None:
        variants["stimuli_kd"] = (stimuli["x"], stimuli["labels"], soft_labels)
    return variants


def students_stage(
    ctx: RunContext, dm: CohortDataModule, stimuli: dict, soft_labels: np.ndarray | None = None
) -> StageOutput:
    students = fit_students(
        student_factories(ctx.cfg.get("students")),
        student_variants(dm, stimuli, soft_labels if ctx.cfg.get("distill", False) else None),
        fs=dm.fs,
        seed=ctx.seed,
        progress=ctx.progress,
        logger_for=ctx.tracker.trainer_logger,
        save_dir=ctx.out / "students",
    )
    return StageOutput({"students": students})


def teacher_architecture_student(cfg) -> str | None:
    """The student whose network is the teacher's (`objective.student` when set)."""
    chosen = (cfg.get("objective") or {}).get("student")
    if chosen:
        return str(chosen)
    target = cfg.model.get("_target_")
    for name, node in (cfg.get("students") or {}).items():
        cls = MODELS.get(node.get("model")) if isinstance(node.get("model"), str) else None
        if cls is not None and f"{cls.__module__}.{cls.__name__}" == target:
            return name
    return None


def objective(cfg, dm: CohortDataModule, students: dict) -> dict | None:
    """What a sweeper optimizes (`objective`): a student's metric on the validation persons,
    never the test persons. None when that student was not trained."""
    ocfg = OmegaConf.to_container(cfg.get("objective") or {}, resolve=True)
    name = teacher_architecture_student(cfg)
    variant, metric = ocfg.get("variant", "stimuli_kd"), ocfg.get("metric", "kappa")
    student = (students.get(name) or {}).get(variant) if name else None
    if student is None or isinstance(student, str):
        return None
    x_val, y_val, _ = dm.datasets["val"].arrays()
    value = score(np.asarray(student.predict_proba(x_val)), y_val)[metric]
    return {"value": value, "student": name, "variant": variant, "metric": metric, "split": "val"}


def evaluate_stage(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, students: dict
) -> StageOutput:
    x_test, y_test, _ = dm.datasets["test"].arrays()
    teacher_probs = predict_proba(teacher, torch.from_numpy(x_test))
    table, predictions = score_students(students, x_test, y_test)
    predictions = {"teacher": (y_test, teacher_probs.numpy().argmax(1)), **predictions}
    results: dict[str, Any] = {"teacher": {"test": score(teacher_probs, y_test)}, "students": table}
    target = objective(ctx.cfg, dm, students)
    if target is not None:
        results["objective"] = target
    return StageOutput({"predictions": predictions}, results)


def attacked_students(students: dict, soft_released: bool) -> dict:
    """Students a third party could train on the release: without soft labels, no one
    distils from the teacher's outputs, so those students are not an attack on it."""
    return {
        f"{name}/{variant}": student
        for name, variants in students.items()
        for variant, student in variants.items()
        if variant.startswith("stimuli")
        and not isinstance(student, str)
        and (soft_released or variant != "stimuli_kd")
    }


def privacy_stage(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, stimuli: dict, students: dict
) -> StageOutput:
    """The privacy audit of what `release` would publish (stimuli/privacy/)."""
    pcfg = OmegaConf.to_container(ctx.cfg.privacy, resolve=True)
    pcfg["auditor"]["trainer"] = placement(ctx.cfg.trainer)
    summary, details = audit_privacy(
        dm,
        teacher,
        stimuli["x"],
        attacked_students(students, releases_soft_labels(ctx.cfg)),
        pcfg,
        ctx.seed,
        progress=ctx.progress,
    )
    write_json(ctx.out / "privacy.json", {"summary": summary, "details": details})
    attribution = details.get("attribution_classifier") or {}
    neighbour = details.get("attribution_neighbour") or {}
    counts = {"classifier": attribution.get("release_counts")}
    counts |= {f"neighbour {v}": neighbour.get(f"{v}_release_counts") for v in ("raw", "embedding")}
    attribution_counts = {
        "stimuli": {k: v for k, v in counts.items() if v is not None},
        "training": attribution.get("training_counts"),
    }
    mt = summary["meets_targets"]
    log.info(
        "privacy: targets met on the release %s; controls have power: %s",
        dict(mt["release"]),
        mt["controls_have_power"],
    )
    return StageOutput({"attribution_counts": attribution_counts}, {"privacy": summary})


def release_forbidden(
    ctx: RunContext,
    dm: CohortDataModule,
    teacher: nn.Module,
    identity: nn.Module,
    label_teachers: nn.Module | None,
) -> ForbiddenInfo:
    """What this job's bundle must not carry: its cohort, its models' parameters, its paths."""
    models = {"teacher": teacher}
    if label_teachers is not None:
        models["label_teachers"] = label_teachers
    if (ctx.cfg.get("release") or {}).get("check_identity_model", True):
        models["identity"] = identity
    return forbidden_for_release(
        dm,
        models,
        extra_paths=[ctx.out, ctx.store.root],
        copy_cfg=ctx.cfg.privacy["copy"],
        seed=ctx.seed,
    )


def release_stage(
    ctx: RunContext,
    dm: CohortDataModule,
    teacher: nn.Module,
    identity: nn.Module,
    stimuli: dict,
    label_teachers: nn.Module | None,
    results: dict,
    soft_labels: np.ndarray | None = None,
) -> StageOutput:
    """The bundle for third parties in `<run>/release/`, written only when the leak check
    finds nothing (stimuli/release/). `results` are the blocks gathered so far (the datacard's
    utility and privacy summaries)."""
    cfg = ctx.cfg
    soft = soft_labels if releases_soft_labels(cfg) else None
    arrays = release_arrays(stimuli["x"], stimuli["labels"], soft)
    card = make_datacard(
        arrays,
        channels=dm.channels,
        fs=dm.fs,
        label_names=dm.label_names,
        normalize=dm.normalize,
        synthesis=cfg.synthesis,
        model=cfg.model,
        stimuli_meta=results.get("stimuli"),
        results=results,
        soft_label_teachers=n_label_teachers(cfg),
    )
    forbidden = release_forbidden(ctx, dm, teacher, identity, label_teachers)
    block = write_checked_release(ctx.out / "release", arrays, card, forbidden)
    return StageOutput({}, {"release": block})
