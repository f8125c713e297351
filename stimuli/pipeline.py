"""The stages of a run, in order; each reads what the previous ones produced (or cached)."""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path

import joblib
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stimuli.classifier import predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.identity import IdentityEnsemble, person_centroids, train_identity_ensemble
from stimuli.io import write_json
from stimuli.metrics import score
from stimuli.privacy import audit_privacy
from stimuli.release import release_stage
from stimuli.release.stage import releases_soft_labels
from stimuli.report import inputs_from_run, report_figures, write_report
from stimuli.stages import cached_stage, stage_keys
from stimuli.students.neural import NeuralStudent
from stimuli.synthesis import synthesize
from stimuli.synthesis.synthesize import shard_sizes
from stimuli.teacher import (
    TeacherEnsemble,
    build_network,
    evaluate_splits,
    member_file,
    person_groups,
    restrict_training_persons,
    train_teacher,
)
from stimuli.tracking import Tracker

log = logging.getLogger(__name__)
STAGES = ("data", "teacher", "synthesize", "students", "evaluate", "privacy", "release")


def accepts(func: object, name: str) -> bool:
    """Whether `func` (a class, partial or method) takes a keyword argument `name`."""
    return name in inspect.signature(func).parameters


def build_datamodule(cfg: DictConfig) -> CohortDataModule:
    dm = instantiate(cfg.data, progress=not cfg.get("quiet", False))
    dm.prepare_data()
    dm.setup()
    return dm


class Run:
    """One job: a config, its output folder, and the stage results gathered so far."""

    def __init__(self, cfg: DictConfig, tracker: Tracker | None = None) -> None:
        self.cfg = cfg
        self.tracker = tracker or Tracker()
        self.out = Path(cfg.paths.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.cache_dir = Path(cfg.paths.cache_dir)
        self.progress = not cfg.get("quiet", False)
        self.keys = stage_keys(cfg)
        self.results: dict = {"experiment": cfg.get("task_name"), "seed": int(cfg.seed)}
        self.timing: dict[str, float] = {}
        self.dm: CohortDataModule | None = None
        self._teacher: torch.nn.Module | None = None
        self._identity: torch.nn.Module | None = None
        self._stimuli: dict | None = None
        self._soft_labels: np.ndarray | None = None
        self._label_teachers: TeacherEnsemble | None = None
        self._centroids: torch.Tensor | None = None
        self.loss_history: dict[str, list[float]] | None = None  # synthesis terms per step
        self.students: dict[str, dict[str, object]] = {}
        self.predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # test (y, predicted)
        self.attribution_counts: dict[str, dict] | None = None  # privacy: stimuli per person

    # --- stages ---------------------------------------------------------------------------
    def data(self) -> None:
        self.dm = build_datamodule(self.cfg)
        summary = self.dm.summary()
        write_json(self.out / "data_summary.json", summary)
        if self.dm.norm_stats:
            write_json(self.out / "normalization.json", self.dm.norm_stats)
        self.results["data"] = summary
        log.info(
            "data: %d records, %d persons, %d windows (train/val/test %s)",
            summary["n_records"],
            summary["n_persons"],
            summary["n_windows"],
            "/".join(str(summary["splits"][s]["windows"]) for s in ("train", "val", "test")),
        )

    def teacher(self) -> None:
        model = self.teacher_model()
        torch.save(model.state_dict(), self.out / "teacher.pt")
        self.identity_model()

    def synthesize(self) -> None:
        if self.cfg.get("synthesis_shards") is not None:  # one job's part of a sharded synthesis
            indices = self.shard_indices()
            done = [self.stimulus_shard(i)[1]["n"] for i in indices]
            self.results["stimuli"] = {"shards": indices, "n": sum(done)}
            return
        stim = self.stimuli()
        np.savez(self.out / "stimuli.npz", **{k: stim[k] for k in ("x", "labels", "teacher_probs")})

    def students_stage(self) -> None:
        dm, cfg = self.dm, self.cfg
        x_train, y_train, _ = dm.datasets["train"].arrays()
        stim = self.stimuli()
        variants = {"real": (x_train, y_train, None), "stimuli": (stim["x"], stim["labels"], None)}
        if cfg.get("distill", False):
            variants["stimuli_kd"] = (stim["x"], stim["labels"], self.soft_labels())
        (self.out / "students").mkdir(exist_ok=True)
        for name, student_cfg in (cfg.get("students") or {}).items():
            factory = instantiate(student_cfg)
            extra = {"progress": self.progress} if accepts(factory, "progress") else {}
            for variant, (x, y, soft) in variants.items():
                t = time.perf_counter()
                try:
                    student = factory(fs=dm.fs, seed=int(cfg.seed), **extra)
                    if accepts(student.fit, "logger"):
                        logger = self.tracker.trainer_logger(f"student-{name}-{variant}")
                        student.fit(x, y, soft=soft, logger=logger)
                    else:
                        student.fit(x, y, soft=soft)
                except ValueError as err:  # e.g. every stimulus given one class by the teacher
                    log.warning("student %s/%s could not be trained: %s", name, variant, err)
                    self.students.setdefault(name, {})[variant] = str(err)
                    continue
                log.info("student %s/%s fitted in %.1f s", name, variant, time.perf_counter() - t)
                joblib.dump(student, self.out / "students" / f"{name}-{variant}.joblib")
                self.students.setdefault(name, {})[variant] = student

    def evaluate(self) -> None:
        x_test, y_test, _ = self.dm.datasets["test"].arrays()
        teacher = self.teacher_model()
        teacher_probs = predict_proba(teacher, torch.from_numpy(x_test))
        self.results["teacher"]["test"] = score(teacher_probs, y_test)
        self.predictions = {"teacher": (y_test, teacher_probs.numpy().argmax(1))}
        table = {}
        for name, variants in self.students.items():
            block = {}
            for v, student in variants.items():
                if isinstance(student, str):  # the error of a student that could not be trained
                    block[v] = {"error": student}
                    continue
                probs = np.asarray(student.predict_proba(x_test))
                block[v] = score(probs, y_test)
                self.predictions[f"{name} / {v}"] = (y_test, probs.argmax(1))
            scored = [v for v in block if "error" not in block[v]]
            for v in [v for v in scored if v.startswith("stimuli") and "real" in scored]:
                suffix = v[len("stimuli") :]
                block[f"gap{suffix}"] = {
                    m: round(block["real"][m] - block[v][m], 4) for m in ("acc", "kappa")
                }
            table[name] = block
        self.results["students"] = table

    def privacy(self) -> None:
        """The privacy audit of what `release` would publish (stimuli/privacy/)."""
        stim = self.stimuli()
        # Students a third party could train on the release: without soft labels, no one
        # distils from the teacher's outputs, so those students are not an attack on it.
        soft_released = releases_soft_labels(self.cfg)
        students = {
            f"{name}/{variant}": student
            for name, variants in self.students.items()
            for variant, student in variants.items()
            if variant.startswith("stimuli")
            and not isinstance(student, str)
            and (soft_released or variant != "stimuli_kd")
        }
        summary, details = audit_privacy(
            self.dm,
            self.teacher_model(),
            stim["x"],
            students,
            self.cfg.privacy,
            int(self.cfg.seed),
            progress=self.progress,
        )
        write_json(self.out / "privacy.json", {"summary": summary, "details": details})
        self.results["privacy"] = summary
        attribution = details.get("attribution_classifier") or {}
        neighbour = details.get("attribution_neighbour") or {}
        counts = {"classifier": attribution.get("release_counts")}
        counts |= {
            f"neighbour {v}": neighbour.get(f"{v}_release_counts") for v in ("raw", "embedding")
        }
        self.attribution_counts = {
            "stimuli": {k: v for k, v in counts.items() if v is not None},
            "training": attribution.get("training_counts"),
        }
        mt = summary["meets_targets"]
        log.info(
            "privacy: targets met on the release %s; controls have power: %s",
            {k: v for k, v in mt["release"].items()},
            mt["controls_have_power"],
        )

    def release(self) -> None:
        """The bundle for third parties, leak-checked (stimuli/release/)."""
        self.results["release"] = release_stage(self)

    def run_stages(self, stages: list[str]) -> dict:
        OmegaConf.save(self.cfg, self.out / "config_resolved.yaml", resolve=True)
        steps = {
            "data": self.data,
            "teacher": self.teacher,
            "synthesize": self.synthesize,
            "students": self.students_stage,
            "evaluate": self.evaluate,
            "privacy": self.privacy,
            "release": self.release,
        }
        for stage in STAGES:
            if stage in stages or stage == "data":
                t = time.perf_counter()
                steps[stage]()
                self.timing[stage] = round(time.perf_counter() - t, 3)
        self.results["timing"] = self.timing
        if stages != ["data"]:
            write_json(self.out / "results.json", self.results)
            inputs = inputs_from_run(self)
            if self.cfg.get("report", True):
                log.info("report: %s", write_report(self.out, self.results, inputs))
            if self.tracker.active:
                self.tracker.log_figures(report_figures(inputs, self.results))
                self.tracker.log_run(self.results, self.loss_history)
            table = format_table(self.results)
            if table:
                print(table)
        return self.results

    # --- cached products --------------------------------------------------------------------
    def teacher_model(self) -> torch.nn.Module:
        """The frozen teacher: one network, or with `teacher.n_models` > 1 a `TeacherEnsemble`
        of networks trained with seeds `seed`, `seed + 1`, ... (member 0 is cached as
        `model.pt`, as a single teacher is)."""
        if self._teacher is None:
            dm, cfg = self.dm, self.cfg
            n_models = int(cfg.teacher.get("n_models", 1))

            def write(folder: Path) -> dict:
                members, reports = [], []
                for i in range(n_models):
                    model, report = train_teacher(
                        dm,
                        cfg.model,
                        cfg.teacher,
                        int(cfg.seed) + i,
                        logger=self.tracker.trainer_logger("teacher" + (f"{i}" if i else "")),
                        progress=self.progress,
                        trainer_cfg=cfg.trainer,
                    )
                    torch.save(model.state_dict(), folder / member_file(i))
                    members.append(model)
                    reports.append(report)
                if n_models == 1:
                    return reports[0]
                report = evaluate_splits(TeacherEnsemble(members).eval(), dm)
                report["members"] = reports
                return report

            path, report, built = cached_stage(
                self.cache_dir, "teacher", self.keys["teacher"], write
            )
            members = self._load_teachers(path, n_models)
            self._teacher = members[0] if n_models == 1 else TeacherEnsemble(members).eval()
            self.results["teacher"] = dict(report)
            self.results.setdefault("cache", {})["teacher"] = "trained" if built else "cached"
        return self._teacher

    def _load_teachers(self, folder: Path, n: int) -> list[torch.nn.Module]:
        """`n` cached networks of the teacher's architecture (`member_file` names), in eval mode."""
        dm = self.dm
        members = []
        for i in range(n):
            model = build_network(self.cfg.model, dm.n_chans, dm.n_classes, dm.n_times)
            model.load_state_dict(torch.load(folder / member_file(i), weights_only=True))
            members.append(model.eval())
        return members

    def identity_model(self) -> torch.nn.Module:
        """The person-ID model of identity inhibition (an `IdentityEnsemble` when
        `identity.ensemble` lists more models)."""
        if self._identity is None:
            dm = self.dm

            def write(folder: Path) -> dict:
                members, report = train_identity_ensemble(
                    dm,
                    self.cfg.identity,
                    int(self.cfg.seed) + 1,
                    progress=self.progress,
                    logger=self.tracker.trainer_logger("identity"),
                )
                for i, model in enumerate(members):
                    torch.save(
                        model.state_dict(), folder / ("model.pt" if i == 0 else f"member{i}.pt")
                    )
                return report

            path, report, built = cached_stage(
                self.cache_dir, "identity", self.keys["identity"], write
            )
            configs = [self.cfg.identity.model, *(self.cfg.identity.get("ensemble") or [])]
            members = []
            for i, model_cfg in enumerate(configs):
                model = build_network(model_cfg, dm.n_chans, report["n_persons"], dm.n_times)
                name = "model.pt" if i == 0 else f"member{i}.pt"
                model.load_state_dict(torch.load(path / name, weights_only=True))
                members.append(model.eval())
            self._identity = members[0] if len(members) == 1 else IdentityEnsemble(members).eval()
            self.results["identity_model"] = report
            self.results.setdefault("cache", {})["identity"] = "trained" if built else "cached"
        return self._identity

    def stimuli(self) -> dict:
        """All stimuli: the shards (each cached on its own, so jobs can share the work) merged in
        shard order, which gives the same arrays as one job synthesizing everything."""
        if self._stimuli is None:
            path, meta, built = cached_stage(
                self.cache_dir, "stimuli", self.keys["stimuli"], self._merge_shards
            )
            with np.load(path / "stimuli.npz") as f:
                self._stimuli = {k: f[k] for k in f.files}
            self.loss_history = meta.pop("loss_history", None)
            self.results["stimuli"] = meta
            self.results.setdefault("cache", {})["stimuli"] = "synthesized" if built else "cached"
        return self._stimuli

    def soft_labels(self) -> np.ndarray:
        """The stimuli's soft labels (what students distil from, and the bundle's `soft`): the
        teacher's probabilities, or with `soft_labels.teachers` k > 1 the mean probabilities of
        k label teachers, each trained on its own 1/k of the training persons."""
        if self._soft_labels is None:
            stim = self.stimuli()
            teachers = self.label_teachers()
            if teachers is None:
                self._soft_labels = stim["teacher_probs"]
            else:
                x = torch.from_numpy(stim["x"])
                self._soft_labels = predict_proba(teachers, x).numpy().astype(np.float32)
                agree = self._soft_labels.argmax(1) == stim["teacher_probs"].argmax(1)
                self.results["soft_labels"]["agreement_with_teacher"] = float(agree.mean())
        return self._soft_labels

    @property
    def n_label_teachers(self) -> int:
        """`soft_labels.teachers` (1, the teacher itself, for configs made before the setting)."""
        return int((self.cfg.get("soft_labels") or {}).get("teachers", 1))

    def label_teachers(self) -> TeacherEnsemble | None:
        """Subsample and aggregate: k teachers of the teacher's architecture and settings, each
        trained on one of k disjoint groups of training persons (drawn with seed +
        `soft_labels.seed_offset`; teacher g gets seed + offset + g). A training person moves
        one of them, so their mean carries less of any one person than the teacher, which saw
        them all. None when `soft_labels.teachers` is 1 (the labels are the teacher's)."""
        k = self.n_label_teachers
        if k == 1 or self._label_teachers is not None:
            return self._label_teachers
        dm, cfg = self.dm, self.cfg
        offset = int(cfg.soft_labels.seed_offset)
        train = dm.datasets["train"]
        groups = person_groups(train.person[train.indices], k, int(cfg.seed) + offset)

        def write(folder: Path) -> dict:
            reports = []
            for g, persons in enumerate(groups):
                model, report = train_teacher(
                    restrict_training_persons(dm, persons),
                    cfg.model,
                    cfg.teacher,
                    int(cfg.seed) + offset + g,
                    logger=self.tracker.trainer_logger(f"label_teacher{g}"),
                    progress=self.progress,
                    trainer_cfg=cfg.trainer,
                )
                torch.save(model.state_dict(), folder / member_file(g))
                reports.append({**report, "n_persons": len(persons)})
            return {"members": reports}

        path, report, built = cached_stage(
            self.cache_dir, "label_teachers", self.keys["label_teachers"], write
        )
        self._label_teachers = TeacherEnsemble(self._load_teachers(path, k)).eval()
        x_test, y_test, _ = dm.datasets["test"].arrays()
        self.results["soft_labels"] = {
            "teachers": k,
            "persons_per_teacher": [len(g) for g in groups],
            "members_test": [m["test"] for m in report["members"]],
            "members_val_kappa": [m["best_epoch_val_kappa"] for m in report["members"]],
            "test": score(predict_proba(self._label_teachers, torch.from_numpy(x_test)), y_test),
        }
        self.results.setdefault("cache", {})["label_teachers"] = "trained" if built else "cached"
        return self._label_teachers

    @property
    def n_shards(self) -> int:
        return len(shard_sizes(int(self.cfg.synthesis.n), int(self.cfg.synthesis.shard_size)))

    def shard_indices(self) -> list[int]:
        """The shards this job synthesizes: `synthesis_shards=[first, stop]`, else all."""
        n_shards = self.n_shards
        chosen = self.cfg.get("synthesis_shards")
        if chosen is None:
            return list(range(n_shards))
        first, stop = (int(v) for v in chosen)
        if not 0 <= first < stop <= n_shards:
            raise ValueError(
                f"synthesis_shards={list(chosen)} is not a range within 0..{n_shards} "
                f"(synthesis.n={self.cfg.synthesis.n} in shards of {self.cfg.synthesis.shard_size})"
            )
        return list(range(first, stop))

    def stimulus_shard(self, index: int) -> tuple[Path, dict]:
        dm, cfg = self.dm, self.cfg

        def write(folder: Path) -> dict:
            teacher, identity = self.teacher_model(), self.identity_model()
            if self._centroids is None:
                space = cfg.synthesis.get("centroid_space", "teacher")
                self._centroids = person_centroids(teacher if space == "teacher" else identity, dm)
            synth_cfg = OmegaConf.to_container(cfg.synthesis, resolve=True)
            synth_cfg["progress_bar"] = self.progress and synth_cfg.get("progress_bar", True)
            student = self.competitor(index)
            if student is None:  # shard 0 (or competition off): nothing to compete with
                synth_cfg["weights"]["competition"] = 0.0
            out = synthesize(
                teacher,
                n_chans=dm.n_chans,
                n_times=dm.n_times,
                n_classes=dm.n_classes,
                cfg=synth_cfg,
                identity_model=identity,
                centroids=self._centroids,
                student=student,
                seed=int(cfg.seed),
                shard_index_range=(index, index + 1),
            )
            np.savez(
                folder / "shard.npz",
                **{k: out[k].numpy() for k in ("x", "labels", "targets", "teacher_probs")},
            )
            return {
                "n": int(out["x"].shape[0]),
                "seconds": float(out["seconds"]),
                "losses": {k: float(v) for k, v in out["losses"].items()},
                "loss_history": out["term_history"],
            }

        key = f"{self.keys['stimuli']}-shard{index:04d}"
        path, meta, built = cached_stage(self.cache_dir, "stimuli_shards", key, write)
        log.info("stimulus shard %d %s", index, "synthesized" if built else "cached")
        return path, meta

    def competitor(self, index: int) -> torch.nn.Module | None:
        """Adaptive DeepInversion's student for shard `index`: the teacher's architecture
        distilled from shards `0..index-1`, so the new shard is pushed to where a student taught
        by the earlier ones still disagrees with the teacher. None for shard 0 or when
        `synthesis.weights.competition` is 0. This makes the shards sequential: shard i needs
        shards 0..i-1 (cached ones are reused)."""
        cfg = self.cfg
        if index == 0 or not float(cfg.synthesis.weights.get("competition", 0.0)):
            return None
        parts = []
        for j in range(index):
            path, _ = self.stimulus_shard(j)
            with np.load(path / "shard.npz") as f:
                parts.append((f["x"], f["labels"], f["teacher_probs"]))
        x, y, soft = (np.concatenate(a) for a in zip(*parts))
        d = cfg.student_defaults
        student = NeuralStudent(
            instantiate(cfg.model),
            steps=int(cfg.synthesis.competitor_steps),
            batch_size=int(d.batch_size),
            lr=float(d.lr),
            weight_decay=float(d.weight_decay),
            max_shift=int(d.max_shift),
            amp_jitter=float(d.amp_jitter),
            temperature=float(d.temperature),
            seed=int(cfg.seed) + index,
        )
        t = time.perf_counter()
        student.fit(x, y, soft=soft)
        log.info("competitor for shard %d fitted in %.1f s", index, time.perf_counter() - t)
        return student.model_

    def _merge_shards(self, folder: Path) -> dict:
        n_shards = self.n_shards
        parts, metas = [], []
        for i in range(n_shards):
            path, meta = self.stimulus_shard(i)
            with np.load(path / "shard.npz") as f:
                parts.append({k: f[k] for k in f.files})
            metas.append(meta)
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        np.savez(folder / "stimuli.npz", **merged)
        agree = merged["teacher_probs"].argmax(1) == merged["labels"]

        def mean(field: str) -> dict:
            """Size-weighted mean over the shards that have each term (shard 0 has no
            competition term)."""
            out = {}
            for k in dict.fromkeys(k for m in metas for k in m[field]):
                have = [m for m in metas if k in m[field]]
                sizes = np.array([m["n"] for m in have], dtype=np.float64)
                values = np.asarray([m[field][k] for m in have], dtype=np.float64)
                out[k] = (values.T @ sizes / sizes.sum()).tolist()
            return out

        return {
            "n": int(sum(m["n"] for m in metas)),
            "steps": int(self.cfg.synthesis.steps),
            "shards": n_shards,
            "teacher_agreement": round(float(agree.mean()), 4),
            "seconds": round(sum(m["seconds"] for m in metas), 2),
            "losses": mean("losses"),
            "loss_history": mean("loss_history"),
        }


def format_table(results: dict) -> str:
    lines = []
    t = results.get("teacher", {}).get("test")
    if t:
        lines.append(
            f"teacher (test persons): acc {t['acc']:.3f}  kappa {t['kappa']:.3f}  "
            f"auroc {t['auroc']:.3f}  f1 {t['f1']:.3f}"
        )
    students = results.get("students", {})
    if students:
        variants = sorted(
            {v for b in students.values() for v in b if not v.startswith("gap")},
            key=["real", "stimuli", "stimuli_kd"].index,
        )
        head = f"{'student':<14}" + "".join(f"{v + ' acc/kappa':>24}" for v in variants)
        lines += [head, "-" * len(head)]
        for name, block in students.items():
            cells = "".join(
                f"{'(not trained)':>24}"
                if "error" in block[v]
                else f"{block[v]['acc']:>15.3f} / {block[v]['kappa']:>6.3f}"
                for v in variants
            )
            lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)


def run_pipeline(cfg: DictConfig) -> dict:
    stages = list(cfg.stages)
    if stages == ["third_party"]:  # a third party's job: a bundle and its own cohort only
        from stimuli.third_party import run_third_party

        return run_third_party(cfg)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known stages, in order: {list(STAGES)}")
    if cfg.get("quiet", False):
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(int(cfg.seed), workers=True)
    tracker = Tracker.from_config(cfg, job_type(stages))
    try:
        run = Run(cfg, tracker)
        results = run.run_stages(stages)
        tracker.finish()
    except BaseException:
        tracker.finish(failed=True)
        raise
    return results


def job_type(stages: list[str]) -> str:
    """What a job does, for grouping W&B runs: `pipeline` when it runs every stage."""
    return "pipeline" if set(stages) >= set(STAGES) else "-".join(s for s in STAGES if s in stages)
