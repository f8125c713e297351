"""After the stages: `report.html` and the W&B summary, from the artifacts the stages made."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from stimuli.pipeline.context import RunContext
from stimuli.report import ReportInputs, report_figures, write_report

log = logging.getLogger(__name__)


def report_inputs(artifacts: Mapping[str, Any]) -> ReportInputs:
    """Test windows, stimuli, the test predictions of the teacher and of every student, the
    synthesis loss terms per step, where the job made them."""
    inputs = ReportInputs(
        predictions=dict(artifacts.get("predictions") or {}),
        synthesis_losses=artifacts.get("loss_history"),
    )
    dm = artifacts.get("dm")
    if dm is not None:
        test = dm.datasets["test"]  # a view: the figures read at most a sample per class
        inputs.real_x, inputs.real_labels = test.view(), test.labels()
        inputs.fs, inputs.channel_names = float(dm.fs), list(dm.channels)
        inputs.label_names = list(dm.label_names)
    stim = artifacts.get("stimuli")
    if stim is not None:
        inputs.stimuli_x, inputs.stimuli_labels = stim["x"], stim["labels"]
    return inputs


def report_stage(ctx: RunContext, artifacts: Mapping[str, Any], results: dict) -> None:
    inputs = report_inputs(artifacts)
    if ctx.cfg.get("report", True):
        log.info("report: %s", write_report(ctx.out, results, inputs))
    if ctx.tracker.active:
        ctx.tracker.log_figures(report_figures(inputs, results))
        ctx.tracker.log_run(results, artifacts.get("loss_history"))
