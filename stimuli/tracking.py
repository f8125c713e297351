"""Experiment tracking: the `logger/` config group (W&B, CSV or nothing) behind one small API.

One tracker per job. With `logger=wandb` the job is one W&B run (offline unless
`logger.wandb.offline=false`), grouped by sweep in a multirun, whose job type names the stages
the job ran; every Lightning Trainer of the job (teacher, identity model, students) logs into it
under its own prefix, and the pipeline adds synthesis curves, figures and tables. `logger=csv`
gives each Trainer a CSV file; `logger=none` logs nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stimuli.report.blocks import flatten

log = logging.getLogger(__name__)
METRICS = ("acc", "kappa", "auroc", "f1")


def sweep_group(cfg: DictConfig) -> tuple[str | None, str]:
    """(W&B group, run name): a multirun's jobs share the sweep folder's group."""
    name = str(cfg.get("task_name") or "stimuli")
    if not HydraConfig.initialized():
        return None, name
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        return f"{name}/{Path(hc.sweep.dir).name}", f"{name}-{hc.job.num}"
    return None, name


class Tracker:
    """`loggers`: the `logger` config node (`{}` tracks nothing)."""

    def __init__(self, loggers: Mapping[str, Any] | None = None, run: Any = None) -> None:
        self.loggers_cfg = dict(loggers or {})
        self.run = run  # a wandb Run, or None

    @classmethod
    def from_config(cls, cfg: DictConfig, job_type: str) -> Tracker:
        loggers = dict(cfg.get("logger") or {})
        run = None
        if "wandb" in loggers:
            if cfg.get("quiet", False):
                os.environ.setdefault("WANDB_SILENT", "true")
            group, name = sweep_group(cfg)
            config = OmegaConf.to_container(cfg, resolve=True)
            config.pop("paths", None)  # local folders say nothing about the experiment
            make_logger = instantiate(loggers["wandb"], _partial_=True)  # `config` is taken
            wandb_logger = make_logger(group=group, job_type=job_type, name=name, config=config)
            run = wandb_logger.experiment
            run.define_metric("synthesis/step")
            run.define_metric("synthesis/*", step_metric="synthesis/step")
            log.info("W&B run %s (%s) in %s", run.id, job_type, run.dir)
        return cls(loggers, run)

    @property
    def active(self) -> bool:
        return self.run is not None

    def trainer_logger(self, prefix: str) -> list | bool:
        """Loggers for one Lightning Trainer, its metrics under `prefix`."""
        from pytorch_lightning.loggers import CSVLogger, WandbLogger

        loggers: list = []
        if self.run is not None:
            loggers.append(WandbLogger(experiment=self.run, prefix=prefix))
        if "csv" in self.loggers_cfg:
            csv = self.loggers_cfg["csv"]
            loggers.append(CSVLogger(save_dir=csv.save_dir, name=csv.name, version=prefix))
        return loggers or False

    def log(self, metrics: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.log(dict(metrics))

    def log_curves(self, prefix: str, curves: Mapping[str, Sequence[float]]) -> None:
        """Per-step curves (e.g. each synthesis loss term), stepped by `<prefix>/step`."""
        if self.run is None or not curves:
            return
        n = min(len(v) for v in curves.values())
        for step in range(n):
            row = {f"{prefix}/{k}": float(v[step]) for k, v in curves.items()}
            self.run.log({**row, f"{prefix}/step": step})

    def log_figures(self, figures: Mapping[str, Any]) -> None:
        if self.run is None or not figures:
            return
        import wandb

        self.run.log({key: wandb.Image(fig) for key, fig in figures.items()})

    def log_table(
        self,
        key: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        bars: Sequence[tuple[str, str]] = (),
    ) -> None:
        """A W&B table, and a bar chart of column `value` against column `label` per pair."""
        if self.run is None or not rows:
            return
        import wandb

        table = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
        logged: dict[str, Any] = {key: table}
        for label, value in bars:
            logged[f"{key}_{value}"] = wandb.plot.bar(table, label, value, title=f"{key}: {value}")
        self.run.log(logged)

    def summary(self, values: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(dict(values))

    def log_run(self, results: Mapping[str, Any], loss_history: Mapping | None = None) -> None:
        """A finished run: `results.json` as the summary, synthesis curves, and the utility,
        privacy and data-split tables (the figures come from `stimuli.report`)."""
        if self.run is None:
            return
        flat = flatten({k: v for k, v in results.items() if k != "cache"}, sep="/")
        self.summary({k: v for k, v in flat.items() if v is not None})
        if loss_history:
            self.log_curves("synthesis", loss_history)
        rows = [
            [f"{name}/{variant}", name, variant, *(block[variant].get(m) for m in METRICS)]
            for name, block in (results.get("students") or {}).items()
            for variant in block
            if not variant.startswith("gap") and "error" not in block[variant]
        ]
        self.log_table(
            "utility",
            ["label", "student", "variant", *METRICS],
            rows,
            bars=[("label", "acc"), ("label", "kappa")],
        )
        privacy = flatten(results.get("privacy") or {}, sep="/")
        self.log_table(
            "privacy",
            ["measure", "value"],
            [[k, float(v)] for k, v in privacy.items() if isinstance(v, int | float)],
        )
        splits = (results.get("data") or {}).get("splits") or {}
        columns = ["persons", "windows", "apnea_fraction"]
        self.log_table(
            "data_splits",
            ["split", *columns],
            [[split, *(block.get(c) for c in columns)] for split, block in splits.items()],
        )

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
