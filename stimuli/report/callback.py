"""Hydra callback: a multirun ends by writing `sweep_report.html` in its sweep folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReportCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from stimuli.report.sweep import write_sweep_report

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            path = write_sweep_report(sweep_dir)
        except (FileNotFoundError, ValueError) as err:  # e.g. every job failed before writing
            log.warning("no sweep report for %s: %s", sweep_dir, err)
            return
        log.info("sweep report: %s", path)
