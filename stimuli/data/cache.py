"""On-disk cache of preprocessed windows: memory-mapped arrays keyed by input files and config.

The key hashes each input file's path, size and modification time (not its bytes, so a cached
setup never re-reads the raw files) together with the preprocessing config. A build writes into a
temporary folder and renames it into place under a file lock, so two processes building the same
cache at once neither corrupt it nor build it twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

CACHE_VERSION = 2  # bump when windowing or readers change what they produce
ARRAYS = ("x", "y", "record_index", "segment_index")


def cache_key(files: Iterable[Path], config: dict) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for path in sorted(Path(f).resolve() for f in files):
        st = path.stat()
        h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


@dataclass
class CachedWindows:
    x: np.ndarray  # memory-mapped float32 (n, n_chans, n_times)
    y: np.ndarray
    record_index: np.ndarray
    segment_index: np.ndarray
    meta: dict
    path: Path


def load_cached(path: Path) -> CachedWindows:
    meta = json.loads((path / "meta.json").read_text())
    arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
    return CachedWindows(**arrays, meta=meta, path=path)


def build_once(cache_dir: Path, key: str, write: Callable[[Path], None]) -> tuple[Path, bool]:
    """The folder `cache_dir/key`, filled by `write(tmp_folder)` first if absent.

    `write` fills a temporary folder that is renamed into place, under a lock, so concurrent
    callers wait for one build and nobody ever sees a half-written entry. Returns the folder and
    whether this call built it. A finished entry holds `meta.json`.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / key
    if (final / "meta.json").is_file():
        return final, False
    with FileLock(str(cache_dir / f"{key}.lock")):
        if (final / "meta.json").is_file():  # another process built it while we waited
            return final, False
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir))
        try:
            write(tmp)
            if not (tmp / "meta.json").is_file():
                raise RuntimeError(f"cache writer for {key} wrote no meta.json")
            if final.exists():  # a broken leftover without meta.json
                shutil.rmtree(final)
            os.chmod(tmp, 0o755)  # mkdtemp makes owner-only folders
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True


def cached_windows(
    cache_dir: Path, key: str, build: Callable[[], tuple[dict[str, np.ndarray], dict]]
) -> tuple[CachedWindows, bool]:
    """Load the window cache entry `key`, building it with `build()` first if absent."""

    def write(tmp: Path) -> None:
        arrays, meta = build()
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name])
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

    path, built = build_once(cache_dir, key, write)
    return load_cached(path), built
