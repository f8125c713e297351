"""The runner: resolves which artifacts the requested stages need, produces each once (a cached
stage loads from the artifact store), and assembles `results.json` from the stages' blocks.

Producers are declared in `PRODUCERS`: the artifacts a function makes, the artifacts it needs
(given as arguments by name) and the user-facing stage it belongs to (`stages=[...]` and the
`timing` block use those names).
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from stimuli.console import quiet_lightning
from stimuli.io import write_json
from stimuli.keys import stage_keys
from stimuli.parallel import worker_jobs
from stimuli.pipeline import assess_stages as assess
from stimuli.pipeline import build_stages as build
from stimuli.pipeline.context import RunContext, StageOutput
from stimuli.pipeline.report_stage import report_stage
from stimuli.pipeline.table import format_table
from stimuli.release.stage import releases_soft_labels
from stimuli.schema import validate
from stimuli.store import ArtifactStore
from stimuli.tracking import Tracker

log = logging.getLogger(__name__)
STAGES = ("data", "teacher", "synthesize", "students", "evaluate", "privacy", "release")


@dataclass(frozen=True)
class Producer:
    stage: str
    makes: tuple[str, ...]
    needs: Callable[[DictConfig], tuple[str, ...]]
    run: Callable[..., StageOutput]


def _fixed(*names: str) -> Callable[[DictConfig], tuple[str, ...]]:
    return lambda cfg: names


def _students_need(cfg: DictConfig) -> tuple[str, ...]:
    return ("dm", "stimuli", "soft_labels") if cfg.get("distill", False) else ("dm", "stimuli")


def _release_needs(cfg: DictConfig) -> tuple[str, ...]:
    base = ("dm", "teacher", "identity", "stimuli", "label_teachers")
    soft = ("soft_labels",) if releases_soft_labels(cfg) else ()
    return (*base, *soft, "results")


PRODUCERS: tuple[Producer, ...] = (
    Producer("data", ("dm",), _fixed(), build.data_stage),
    Producer("teacher", ("teacher",), _fixed("dm"), build.teacher_stage),
    Producer("teacher", ("identity",), _fixed("dm"), build.identity_stage),
    Producer(
        "synthesize",
        ("stimuli", "loss_history"),
        _fixed("dm", "teacher", "identity"),
        build.stimuli_stage,
    ),
    Producer(
        "students",
        ("soft_labels", "label_teachers"),
        _fixed("dm", "teacher", "stimuli"),
        build.soft_labels_stage,
    ),
    Producer("students", ("students",), _students_need, assess.students_stage),
    Producer(
        "evaluate", ("predictions",), _fixed("dm", "teacher", "students"), assess.evaluate_stage
    ),
    Producer(
        "privacy",
        ("privacy_details",),
        _fixed("dm", "stimuli"),
        assess.privacy_stage,
    ),
    Producer("release", ("released",), _release_needs, assess.release_stage),
)
# What each requested stage must produce.
STAGE_ARTIFACTS = {
    "data": ("dm",),
    "teacher": ("teacher", "identity"),
    "synthesize": ("stimuli",),
    "students": ("students",),
    "evaluate": ("predictions",),
    "privacy": ("privacy_details",),
    "release": ("released",),
}


def _merge(results: dict, blocks: dict) -> None:
    """Stage blocks into results.json: nested dicts merge (e.g. `cache`, `teacher`)."""
    for key, value in blocks.items():
        if isinstance(value, dict) and isinstance(results.get(key), dict):
            _merge(results[key], value)
        else:
            results[key] = value


class Runner:
    """Produces artifacts on demand, each once; gathers results and per-stage seconds."""

    def __init__(self, ctx: RunContext, artifacts: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.artifacts: dict[str, Any] = dict(artifacts or {})
        self.results: dict[str, Any] = {"experiment": ctx.cfg.get("task_name"), "seed": ctx.seed}
        self.timing: dict[str, float] = {}
        self.peak_rss: dict[str, float] = {}
        self._by_artifact = {name: p for p in PRODUCERS for name in p.makes}

    def get(self, name: str) -> Any:
        """Artifact `name`, produced first if needed; `results` is the results gathered so far."""
        if name == "results":
            return self.results
        if name not in self.artifacts:
            self._produce(self._by_artifact[name])
        return self.artifacts[name]

    def _produce(self, producer: Producer) -> None:
        args = {n: self.get(n) for n in producer.needs(self.ctx.cfg)}
        start = time.perf_counter()
        out = producer.run(self.ctx, **args)
        seconds = time.perf_counter() - start
        self.timing[producer.stage] = round(self.timing.get(producer.stage, 0.0) + seconds, 3)
        self.peak_rss[producer.stage] = peak_rss_mib()
        for name in producer.makes:
            self.artifacts[name] = out.artifacts.get(name)
        _merge(self.results, out.results)

    def run(self, stages: list[str]) -> dict:
        for stage in STAGES:
            if stage in stages or stage == "data":
                for name in STAGE_ARTIFACTS[stage]:
                    self.get(name)
        self.results["timing"] = {s: self.timing[s] for s in STAGES if s in self.timing}
        self.results["peak_rss_mib"] = {s: self.peak_rss[s] for s in STAGES if s in self.peak_rss}
        return self.results


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (MiB): after each stage, it shows which
    stage raised it (bench/stage_scale.py)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def context(cfg: DictConfig, tracker: Tracker | None = None) -> RunContext:
    """The `RunContext` of a job with config `cfg` (its output folder is created)."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    store = ArtifactStore(Path(cfg.paths.cache_dir))
    return RunContext(cfg, out, store, stage_keys(cfg), tracker or Tracker())


def open_job(cfg: DictConfig, artifacts: dict[str, Any] | None = None) -> Runner:
    """A runner over `cfg` for experiments and tests: `open_job(cfg).get("stimuli")` produces
    (or loads from the cache) exactly what a run with `cfg` would; `artifacts` presets some
    (e.g. another job's `dm`)."""
    validate(cfg)
    return Runner(context(cfg), artifacts)


def run_pipeline(cfg: DictConfig) -> dict:
    stages = list(cfg.stages)
    if stages == ["third_party"]:  # a third party's job: a bundle and its own cohort only
        from stimuli.third_party import run_third_party

        return run_third_party(cfg)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known stages, in order: {list(STAGES)}")
    validate(cfg)
    if cfg.get("quiet", False):
        quiet_lightning()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    worker_jobs(cfg.get("jobs"))  # a bad `jobs` fails here, before anything trains
    pl.seed_everything(int(cfg.seed), workers=True)
    tracker = Tracker.from_config(cfg, job_type(stages))
    ctx = context(cfg, tracker)
    out = ctx.out
    try:
        OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)
        runner = Runner(ctx)
        results = runner.run(stages)
        if stages != ["data"]:
            write_json(out / "results.json", results)
            report_stage(ctx, runner.artifacts, results)
            table = format_table(results)
            if table:
                print(table)
        tracker.finish()
    except BaseException:
        tracker.finish(failed=True)
        raise
    return results


def job_type(stages: list[str]) -> str:
    """What a job does, for grouping W&B runs: `pipeline` when it runs every stage."""
    return "pipeline" if set(stages) >= set(STAGES) else "-".join(s for s in STAGES if s in stages)
