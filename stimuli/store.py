"""The artifact store: stage outputs cached under `<cache>/stages/<stage>/<key>/`.

A job whose inputs were already computed loads them instead of recomputing them. Entries are
written to a temporary folder and renamed into place under a lock (`build_once`), so concurrent
jobs wait for one build and never read a half-written entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stimuli.data.cache import build_once
from stimuli.io import read_json


@dataclass(frozen=True)
class Entry:
    """One cached stage output: its folder, its `meta.json` and whether this call built it."""

    path: Path
    meta: dict
    built: bool


@dataclass(frozen=True)
class ArtifactStore:
    """Stage outputs under `root/stages/`, each addressed by (stage, key)."""

    root: Path

    def entry(self, stage: str, key: str, write: Callable[[Path], dict]) -> Entry:
        """The entry `stage/key`; `write(folder) -> meta` fills it first when it is absent."""

        def build(tmp: Path) -> None:
            meta = write(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))

        path, built = build_once(Path(self.root) / "stages" / stage, key, build)
        return Entry(path, read_json(path / "meta.json"), built)
