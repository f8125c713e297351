"""The arrays a report may draw from; every field is optional (its section then says so)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stimuli.data.datasets import RowView


@dataclass
class ReportInputs:
    real_x: np.ndarray | RowView | None = None  # (N, C, T) real windows, e.g. the test split
    real_labels: np.ndarray | None = None  # (N,)
    stimuli_x: np.ndarray | None = None  # (M, C, T)
    stimuli_labels: np.ndarray | None = None  # (M,)
    fs: float | None = None  # Hz; defaults to results["data"]["fs"]
    channel_names: Sequence[str] | None = None  # defaults to results["data"]["channels"]
    label_names: Sequence[str] | None = None
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    synthesis_losses: Mapping[str, Sequence[float]] | None = None  # term → value per step
    training_curves: Mapping[str, Sequence[tuple[float, float]]] | None = None  # (step, value)

    def with_defaults(self, results: Mapping[str, Any]) -> ReportInputs:
        """Fill fs and channel names from results.json's data summary when not given."""
        data = results.get("data") or {}
        out = replace(self)
        if out.fs is None and isinstance(data.get("fs"), int | float):
            out.fs = float(data["fs"])
        if out.channel_names is None and data.get("channels"):
            out.channel_names = list(data["channels"])
        if out.label_names is None and data.get("label_names"):
            out.label_names = list(data["label_names"])
        return out


def inputs_from_run_dir(run_dir: str | Path) -> ReportInputs:
    """What a finished run folder holds besides results.json: the stimuli (stimuli.npz) and, from
    the release's datacard when there is one, the class names. Real windows are not kept there.
    """
    run_dir = Path(run_dir)
    inputs = ReportInputs()
    if (run_dir / "stimuli.npz").is_file():
        with np.load(run_dir / "stimuli.npz") as f:
            if "x" in f.files and "labels" in f.files:
                inputs.stimuli_x, inputs.stimuli_labels = f["x"], f["labels"]
    card = run_dir / "release" / "datacard.json"
    if card.is_file():
        try:
            names = json.loads(card.read_text())["labels"]["names"]
            inputs.label_names = [str(n) for n in names]
        except (ValueError, KeyError, TypeError):
            pass
    return inputs
