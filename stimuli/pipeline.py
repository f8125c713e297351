"""The stages of a run, in order; each reads what the previous ones produced (or cached)."""

from __future__ import annotations

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
from stimuli.identity import person_centroids, train_identity
from stimuli.io import write_json
from stimuli.metrics import score
from stimuli.release import release_stage
from stimuli.stages import cached_stage, stage_keys
from stimuli.synthesis import synthesize
from stimuli.teacher import build_network, train_teacher

log = logging.getLogger(__name__)
STAGES = ("data", "teacher", "synthesize", "students", "evaluate", "release")


def build_datamodule(cfg: DictConfig) -> CohortDataModule:
    dm = instantiate(cfg.data, progress=not cfg.get("quiet", False))
    dm.prepare_data()
    dm.setup()
    return dm


class Run:
    """One job: a config, its output folder, and the stage results gathered so far."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
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
        self.students: dict[str, dict[str, object]] = {}

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
        stim = self.stimuli()
        np.savez(self.out / "stimuli.npz", **{k: stim[k] for k in ("x", "labels", "teacher_probs")})

    def students_stage(self) -> None:
        dm, cfg = self.dm, self.cfg
        x_train, y_train, _ = dm.datasets["train"].arrays()
        stim = self.stimuli()
        variants = {"real": (x_train, y_train, None), "stimuli": (stim["x"], stim["labels"], None)}
        if cfg.get("distill", False):
            variants["stimuli_kd"] = (stim["x"], stim["labels"], stim["teacher_probs"])
        (self.out / "students").mkdir(exist_ok=True)
        for name, student_cfg in (cfg.get("students") or {}).items():
            factory = instantiate(student_cfg)
            for variant, (x, y, soft) in variants.items():
                t = time.perf_counter()
                try:
                    student = factory(fs=dm.fs, seed=int(cfg.seed)).fit(x, y, soft=soft)
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
        self.results["teacher"]["test"] = score(
            predict_proba(teacher, torch.from_numpy(x_test)), y_test
        )
        table = {}
        for name, variants in self.students.items():
            block = {
                v: {"error": s} if isinstance(s, str) else score(s.predict_proba(x_test), y_test)
                for v, s in variants.items()
            }
            scored = [v for v in block if "error" not in block[v]]
            for v in [v for v in scored if v.startswith("stimuli") and "real" in scored]:
                suffix = v[len("stimuli") :]
                block[f"gap{suffix}"] = {
                    m: round(block["real"][m] - block[v][m], 4) for m in ("acc", "kappa")
                }
            table[name] = block
        self.results["students"] = table

    def release(self) -> None:
        """The bundle for third parties, leak-checked (stimuli/release.py)."""
        self.results["release"] = release_stage(self)

    # --- cached products --------------------------------------------------------------------
    def teacher_model(self) -> torch.nn.Module:
        if self._teacher is None:
            dm = self.dm

            def write(folder: Path) -> dict:
                model, report = train_teacher(
                    dm,
                    self.cfg.model,
                    self.cfg.teacher,
                    int(self.cfg.seed),
                    progress=self.progress,
                    trainer_cfg=self.cfg.trainer,
                )
                torch.save(model.state_dict(), folder / "model.pt")
                return report

            path, report, built = cached_stage(
                self.cache_dir, "teacher", self.keys["teacher"], write
            )
            model = build_network(self.cfg.model, dm.n_chans, dm.n_classes, dm.n_times)
            model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
            self._teacher = model.eval()
            self.results["teacher"] = {k: v for k, v in report.items()}
            self.results.setdefault("cache", {})["teacher"] = "trained" if built else "cached"
        return self._teacher

    def identity_model(self) -> torch.nn.Module:
        if self._identity is None:
            dm = self.dm

            def write(folder: Path) -> dict:
                model, report = train_identity(
                    dm,
                    self.cfg.identity.model,
                    self.cfg.identity,
                    int(self.cfg.seed) + 1,
                    progress=self.progress,
                )
                torch.save(model.state_dict(), folder / "model.pt")
                return report

            path, report, built = cached_stage(
                self.cache_dir, "identity", self.keys["identity"], write
            )
            n_persons = report["n_persons"]
            model = build_network(self.cfg.identity.model, dm.n_chans, n_persons, dm.n_times)
            model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
            self._identity = model.eval()
            self.results["identity_model"] = report
            self.results.setdefault("cache", {})["identity"] = "trained" if built else "cached"
        return self._identity

    def stimuli(self) -> dict:
        if self._stimuli is None:
            dm, cfg = self.dm, self.cfg

            def write(folder: Path) -> dict:
                teacher, identity = self.teacher_model(), self.identity_model()
                space = cfg.synthesis.get("centroid_space", "teacher")
                centroids = person_centroids(teacher if space == "teacher" else identity, dm)
                synth_cfg = OmegaConf.to_container(cfg.synthesis, resolve=True)
                synth_cfg["progress_bar"] = self.progress and synth_cfg.get("progress_bar", True)
                out = synthesize(
                    teacher,
                    n_chans=dm.n_chans,
                    n_times=dm.n_times,
                    n_classes=dm.n_classes,
                    cfg=synth_cfg,
                    identity_model=identity,
                    centroids=centroids,
                    seed=int(cfg.seed),
                )
                np.savez(
                    folder / "stimuli.npz",
                    x=out["x"].numpy(),
                    labels=out["labels"].numpy(),
                    targets=out["targets"].numpy(),
                    teacher_probs=out["teacher_probs"].numpy(),
                )
                return {
                    "n": int(out["x"].shape[0]),
                    "steps": int(cfg.synthesis.steps),
                    "teacher_agreement": round(float(out["teacher_agreement"]), 4),
                    "seconds": round(float(out["seconds"]), 2),
                    "losses": {k: float(v) for k, v in out["losses"].items()},
                }

            path, meta, built = cached_stage(self.cache_dir, "stimuli", self.keys["stimuli"], write)
            with np.load(path / "stimuli.npz") as f:
                self._stimuli = {k: f[k] for k in f.files}
            self.results["stimuli"] = meta
            self.results.setdefault("cache", {})["stimuli"] = "synthesized" if built else "cached"
        return self._stimuli


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
    run = Run(cfg)
    OmegaConf.save(cfg, run.out / "config_resolved.yaml", resolve=True)
    steps = {
        "data": run.data,
        "teacher": run.teacher,
        "synthesize": run.synthesize,
        "students": run.students_stage,
        "evaluate": run.evaluate,
        "release": run.release,
    }
    for stage in STAGES:
        if stage in stages or (stage == "data"):
            t = time.perf_counter()
            steps[stage]()
            run.timing[stage] = round(time.perf_counter() - t, 3)
    run.results["timing"] = run.timing
    if stages != ["data"]:
        write_json(run.out / "results.json", run.results)
        table = format_table(run.results)
        if table:
            print(table)
    return run.results
