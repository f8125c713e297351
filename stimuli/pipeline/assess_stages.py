"""The stages that judge and ship the mechanism: students, evaluation, privacy audit, release.

Each takes the job's `RunContext` and the artifacts it needs and returns a `StageOutput`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from stimuli.classifier import predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.data.datasets import RowView
from stimuli.io import write_json
from stimuli.keys import config_hash, data_identity, mechanism_hash, student_key
from stimuli.metrics import score
from stimuli.models import MODELS
from stimuli.parallel import worker_jobs
from stimuli.pipeline.build_stages import n_label_teachers
from stimuli.pipeline.context import RunContext, StageOutput
from stimuli.privacy.auditor import posteriors, train_person_model
from stimuli.privacy.candidates import Candidates
from stimuli.privacy.criteria import OtherNight, split_criteria
from stimuli.privacy.person_scores import attack_student_factories
from stimuli.privacy.verdict import CRITERIA, judge
from stimuli.release.bundle import ReleaseRefused
from stimuli.release.datacard import verdict_summary
from stimuli.release.forbidden import ForbiddenInfo
from stimuli.release.stage import (
    forbidden_for_release,
    make_datacard,
    release_arrays,
    releases_soft_labels,
    write_checked_release,
)
from stimuli.students.base import Student
from stimuli.students.fit import chunked_proba, fit_students, score_students, student_factories
from stimuli.training import placement

log = logging.getLogger(__name__)


def student_variants(
    dm: CohortDataModule,
    stimuli: dict,
    soft_labels: np.ndarray | None,
    hard_labels: bool = True,
) -> dict[str, tuple]:
    """`real` (training windows), with `hard_labels` `stimuli` (the stimuli's hard labels), and,
    given soft labels, `stimuli_kd`. The training windows are a `WindowView` of the memory map:
    the students read them batch by batch (features chunk by chunk), and worker processes get
    the map by reference, so the stage never holds the whole training split."""
    train = dm.datasets["train"]
    variants = {"real": (train.view(), train.labels(), None)}
    if hard_labels:
        variants["stimuli"] = (stimuli["x"], stimuli["labels"], None)
    if soft_labels is not None:
        variants["stimuli_kd"] = (stimuli["x"], stimuli["labels"], soft_labels)
    return variants


def students_stage(
    ctx: RunContext, dm: CohortDataModule, stimuli: dict, soft_labels: np.ndarray | None = None
) -> StageOutput:
    students = fit_students(
        student_factories(ctx.cfg.get("students")),
        student_variants(
            dm,
            stimuli,
            soft_labels if ctx.cfg.get("distill", False) else None,
            bool(ctx.cfg.get("hard_labels", True)),
        ),
        fs=dm.fs,
        seed=ctx.seed,
        progress=ctx.progress,
        logger_for=ctx.tracker.trainer_logger,
        save_dir=ctx.out / "students",
        cache=StoredStudents(ctx),
        jobs=worker_jobs(ctx.cfg.get("jobs"), ctx.cfg.trainer),
    )
    return StageOutput({"students": students})


@dataclass(frozen=True)
class StoredStudents:
    """Students in the store (`stages/students/<key>`): a sweep over anything a student does
    not learn from (privacy settings, other students, a rerun for the audit) fits it once."""

    ctx: RunContext

    def _key(self, name: str, variant: str) -> str:
        return student_key(self.ctx.cfg, dict(self.ctx.keys), name, variant)

    def load(self, name: str, variant: str) -> Student | None:
        entry = self.ctx.store.find("students", self._key(name, variant))
        return None if entry is None else Student.load(entry.path / "student.joblib")

    def save(self, name: str, variant: str, student: Student) -> Student:
        def write(folder: Path) -> dict:
            student.save(folder / "student.joblib")
            return {"student": name, "variant": variant}

        entry = self.ctx.store.entry("students", self._key(name, variant), write)
        return Student.load(entry.path / "student.joblib")


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
    val = dm.datasets["val"]
    value = score(chunked_proba(student, val.view()), val.labels())[metric]
    return {"value": value, "student": name, "variant": variant, "metric": metric, "split": "val"}


def evaluate_stage(
    ctx: RunContext, dm: CohortDataModule, teacher: nn.Module, students: dict
) -> StageOutput:
    test = dm.datasets["test"]  # read batch by batch from the memory-mapped cache
    y_test = test.labels()
    teacher_probs = predict_proba(teacher, test.view())
    table, predictions = score_students(students, test.view(), y_test)
    predictions = {"teacher": (y_test, teacher_probs.numpy().argmax(1)), **predictions}
    results: dict[str, Any] = {"teacher": {"test": score(teacher_probs, y_test)}, "students": table}
    target = objective(ctx.cfg, dm, students)
    if target is not None:
        results["objective"] = target
    return StageOutput({"predictions": predictions}, results)


def privacy_stage(ctx: RunContext, dm: CohortDataModule, stimuli: dict) -> StageOutput:
    """The anonymity criteria on this run's one split (stimuli/privacy/criteria.py): the release
    and the known-truth releases attacked the same way, members against non-members. Writes
    `privacy.json` (with the per-person scores `stimuli.audit` pools) and returns the summary,
    labelled "one split, not a verdict"."""
    pcfg = OmegaConf.to_container(ctx.cfg.privacy, resolve=True)
    cand = Candidates.from_datamodule(dm, float(pcfg["auditor"]["holdout"]))
    auditor = cached_auditor(ctx, cand, pcfg["auditor"])
    other_night = None
    if pcfg.get("attacker_nights"):
        attacker = Candidates.other_night(dm)
        model = cached_auditor(ctx, attacker, pcfg["auditor"], "other_night")
        other_night = OtherNight(attacker, lambda x: posteriors(model, x))
    summary, details = split_criteria(
        cand,
        stimuli["x"],
        stimuli["labels"],
        lambda x: posteriors(auditor, x),
        attack_student_factories(pcfg.get("attack_students")),
        pcfg,
        ctx.seed,
        other_night,
    )
    write_json(ctx.out / "privacy.json", {"summary": summary, "details": details})
    log.info("privacy (%s): %s", summary["label"], one_split_judgment(summary, pcfg["rules"]))
    verdict = verdict_summary(mechanism_verdict(ctx))
    return StageOutput({"privacy_details": details}, {"privacy": summary, "verdict": verdict})


def one_split_judgment(summary: dict, rules: dict) -> dict[str, bool | None]:
    """Each criterion's pass rule on the release, on this split alone."""
    release = summary["release"]
    return {c: judge(c, release[c], rules)["pass"] for c in CRITERIA}


def cached_auditor(
    ctx: RunContext, cand: Candidates, cfg: dict, attacker: str = "early_parts"
) -> nn.Module:
    """The attacker's person-ID model over every candidate, trained on the `early` windows of
    `cand`: the early part of every night (`early_parts`), or the withheld nights of the
    other-night attacker (`other_night`). It does not depend on the person split, so the K
    runs of an audit share one entry."""
    seed = ctx.seed + int(cfg["seed_offset"])
    rows = cand.early_rows()

    def write(folder: Path) -> dict:
        model = train_person_model(
            RowView(cand.x, rows),  # the early windows, not a copy of them
            cand.slot[rows],
            cand.n_persons,
            {**cfg, "trainer": placement(ctx.cfg.trainer)},
            seed,
        )
        torch.save(model, folder / "model.pt")
        return {"n_persons": cand.n_persons}

    data = {k: v for k, v in data_identity(ctx.cfg).items() if k != "split"}
    # "person_order": entries trained before `early_rows` saw the windows in split order
    key = config_hash(
        "auditor", data, cfg, seed, "person_order",
        *([attacker] if attacker != "early_parts" else []),
    )  # fmt: skip
    entry = ctx.store.entry("auditor", key, write)
    return torch.load(entry.path / "model.pt", weights_only=False).eval()


def mechanism_verdict(ctx: RunContext) -> dict | None:
    """The verdict `stimuli.audit` stored for this run's mechanism, if it was audited."""
    path = ctx.store.verdict_path(mechanism_hash(ctx.cfg))
    return json.loads(path.read_text()) if path.is_file() else None


def job_overrides(cfg) -> list[str]:
    """This job's command-line overrides (Hydra's), without the person split it drew."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # composed outside a Hydra app (tests, experiments)
        overrides = [f"+experiment={cfg.task_name}"]
    return [o for o in overrides if not o.startswith(("data.split.seed=", "stages="))]


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
    verdict = mechanism_verdict(ctx)
    if cfg.release.get("require_verdict", False) and (verdict or {}).get("anonymity") != (
        "established"
    ):
        state = "has no verdict" if verdict is None else f"is {verdict['anonymity']!r}"
        raise ReleaseRefused(
            f"release.require_verdict=true: the anonymity of this mechanism "
            f"({mechanism_hash(cfg)}) {state}, so no bundle is written. Audit it with "
            f"`python -m stimuli.audit {' '.join(job_overrides(cfg))} audit.splits=8` (same "
            "overrides as this run), or set release.require_verdict=false."
        )
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
        verdict=verdict,
    )
    forbidden = release_forbidden(ctx, dm, teacher, identity, label_teachers)
    block = write_checked_release(ctx.out / "release", arrays, card, forbidden)
    return StageOutput({}, {"release": block})
