"""What every stage of one job reads: its config, output folder, artifact store and tracker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from stimuli.store import ArtifactStore
from stimuli.tracking import Tracker


@dataclass(frozen=True)
class RunContext:
    """Read-only settings of a job; stages take their inputs as arguments, never from here."""

    cfg: DictConfig
    out: Path
    store: ArtifactStore
    keys: Mapping[str, str]
    tracker: Tracker = field(default_factory=Tracker)

    @property
    def progress(self) -> bool:
        return not self.cfg.get("quiet", False)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)


@dataclass
class StageOutput:
    """A stage's artifacts (by name) and its blocks of `results.json`."""

    artifacts: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
