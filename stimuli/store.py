"""The artifact store: stage outputs cached under `<cache>/stages/<stage>/<key>/`.

A job whose inputs were already computed loads them instead of recomputing them. Entries are
written to a temporary folder and renamed into place under a lock (`build_once`), so concurrent
jobs wait for one build and never read a half-written entry. Each entry keeps the SHA-256 of its
files (`checksums.json`); an entry whose files were truncated or altered since is reported with
a warning naming it and rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from stimuli.data.cache import build_once
from stimuli.io import DiskFullError, disk_full, folder_bytes, is_disk_full

log = logging.getLogger(__name__)
CHECKSUMS = "checksums.json"
META = "meta.json"


@dataclass(frozen=True)
class Entry:
    """One cached stage output: its folder, its `meta.json` and whether this call built it."""

    path: Path
    meta: dict
    built: bool


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of an entry but its checksums file (`meta.json` included)."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[str(path.relative_to(folder))] = digest.hexdigest()
    return out


def damage(folder: Path) -> str | None:
    """What is wrong with a finished entry, or None. Entries written before checksums were
    kept (no `checksums.json`) are only checked for a readable `meta.json`."""
    try:
        json.loads((folder / META).read_text())
    except (OSError, ValueError) as err:
        return f"{META} unreadable ({err})"
    if not (folder / CHECKSUMS).is_file():
        return None
    try:
        want = json.loads((folder / CHECKSUMS).read_text())
    except (OSError, ValueError) as err:
        return f"{CHECKSUMS} unreadable ({err})"
    have = file_digests(folder)
    for name in sorted(set(want) | set(have)):
        if name not in have:
            return f"{name} missing"
        if name not in want:
            return f"{name} not listed in {CHECKSUMS}"
        if want[name] != have[name]:
            return f"{name} altered or truncated (checksum mismatch)"
    return None


def _remove_leftovers(folder: Path, key: str) -> None:
    """Temporary build folders of `key` left by a killed job (SIGKILL runs no cleanup). Under
    the entry's lock no live job is building `key`, so any such folder is a dead one's."""
    if not folder.is_dir() or not any(folder.glob(f".{key}-*")):
        return
    with FileLock(str(folder / f"{key}.lock")):
        for stale in folder.glob(f".{key}-*"):
            log.warning("removing %s, left half-written by a job that was killed", stale)
            shutil.rmtree(stale, ignore_errors=True)


@dataclass(frozen=True)
class ArtifactStore:
    """Stage outputs under `root/stages/`, each addressed by (stage, key)."""

    root: Path

    def entry(self, stage: str, key: str, write: Callable[[Path], dict]) -> Entry:
        """The entry `stage/key`; `write(folder) -> meta` fills it first when it is absent, or
        again when the cached one is damaged."""

        def build(tmp: Path) -> None:
            try:
                meta = write(tmp)
                (tmp / META).write_text(json.dumps(meta, indent=1, default=str))
                (tmp / CHECKSUMS).write_text(json.dumps(file_digests(tmp), indent=1))
            except OSError as err:  # the temporary folder is removed by build_once
                if is_disk_full(err) and not isinstance(err, DiskFullError):
                    what = f"the {stage} cache entry {key}"
                    raise disk_full(folder / key, folder_bytes(tmp) + 1, what) from err
                raise

        folder = Path(self.root) / "stages" / stage
        _remove_leftovers(folder, key)
        path, built = build_once(folder, key, build)
        if not built and (problem := damage(path)) is not None:
            log.warning("cache entry %s is damaged: %s; rebuilding it", path, problem)
            with FileLock(str(folder / f"{key}.lock")):
                if damage(path) is not None:  # nobody rebuilt it while we waited
                    shutil.rmtree(path)
            path, built = build_once(folder, key, build)
        return Entry(path, json.loads((path / META).read_text()), built)
