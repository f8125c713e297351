"""The artifact store: stage outputs cached under `<cache>/stages/<stage>/<key>/`.

A job whose inputs were already computed loads them instead of recomputing them. Entries are
written to a temporary folder and renamed into place under a lock, so concurrent jobs wait for
one build and never read a half-written entry; each entry keeps the SHA-256 of its files, and a
damaged one is reported and rebuilt (`build_checked`, shared with the window cache).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stimuli.data.cache import CHECKSUMS, build_checked, damage

META = "meta.json"
__all__ = ["CHECKSUMS", "ArtifactStore", "Entry"]


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

    def resume_dir(self, stage: str, key: str) -> Path:
        """Where a long training of entry `stage/key` keeps the checkpoints it resumes from after
        a kill (outside the entry's temporary folder, which a later job removes)."""
        return Path(self.root) / "resume" / stage / key

    def verdict_path(self, mechanism: str) -> Path:
        """Where `stimuli.audit` keeps the verdict of mechanism `mechanism` (its hash), for the
        releases of that mechanism to carry."""
        return Path(self.root) / "verdicts" / f"{mechanism}.json"

    def entry(self, stage: str, key: str, write: Callable[[Path], dict]) -> Entry:
        """The entry `stage/key`; `write(folder) -> meta` fills it first when it is absent, or
        again when the cached one is damaged."""

        def build(tmp: Path) -> None:
            meta = write(tmp)
            (tmp / META).write_text(json.dumps(meta, indent=1, default=str))

        folder = Path(self.root) / "stages" / stage
        path, built = build_checked(folder, key, build, f"the {stage} cache entry {key}")
        return Entry(path, json.loads((path / META).read_text()), built)

    def find(self, stage: str, key: str) -> Entry | None:
        """The finished, undamaged entry `stage/key`, or None (nothing is built)."""
        path = Path(self.root) / "stages" / stage / key
        if not (path / META).is_file() or damage(path) is not None:
            return None
        return Entry(path, json.loads((path / META).read_text()), False)
