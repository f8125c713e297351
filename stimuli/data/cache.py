"""On-disk cache of preprocessed windows: memory-mapped arrays keyed by input files and config.

The key hashes each input file's path, size and modification time (not its bytes, so a cached
setup never re-reads the raw files) together with the preprocessing config. A build writes into a
temporary folder and renames it into place under a file lock, so two processes building the same
cache at once neither corrupt it nor build it twice. Windows are appended record by record
(`WindowWriter`), so a build holds the windows of the records being read, never the cohort's.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from stimuli.io import DiskFullError, disk_full, folder_bytes, is_disk_full

log = logging.getLogger(__name__)
CHECKSUMS = "checksums.json"
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
        json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as err:
        return f"meta.json unreadable ({err})"
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


def build_checked(
    cache_dir: Path, key: str, write: Callable[[Path], None], what: str
) -> tuple[Path, bool]:
    """`build_once`, with the entry's SHA-256 checksums kept beside it (`checksums.json`): a
    finished entry found damaged (a file truncated, altered, missing or added) is reported with a
    warning naming it and rebuilt, never loaded; temporary folders of a killed build are removed
    first; a full disk raises `DiskFullError` naming the entry (`what`) and the space needed."""

    def build(tmp: Path) -> None:
        try:
            write(tmp)
            (tmp / CHECKSUMS).write_text(json.dumps(file_digests(tmp), indent=1))
        except OSError as err:  # the temporary folder is removed by build_once
            if is_disk_full(err) and not isinstance(err, DiskFullError):
                raise disk_full(Path(cache_dir) / key, folder_bytes(tmp) + 1, what) from err
            raise

    cache_dir = Path(cache_dir)
    _remove_leftovers(cache_dir, key)
    path, built = build_once(cache_dir, key, build)
    if not built and (problem := damage(path)) is not None:
        log.warning("cache entry %s is damaged: %s; rebuilding it", path, problem)
        with FileLock(str(cache_dir / f"{key}.lock")):
            if damage(path) is not None:  # nobody rebuilt it while we waited
                shutil.rmtree(path)
        path, built = build_once(cache_dir, key, build)
    return path, built


class WindowWriter:
    """Appends windows to the cache arrays in `folder`, one record at a time.

    `x` goes straight to `x.npy`: its header is written for zero windows and rewritten with the
    final count by `close` (NumPy pads the header so the first axis can grow in place), so the
    file is byte-for-byte what `np.save` writes for the concatenated array. The per-window integer
    arrays (24 bytes a window, against `x`'s `4 * n_chans * n_times`) are collected and saved
    at the end.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.n = 0
        self.sample_shape: tuple[int, ...] | None = None
        self.header_len = 0
        self.x_file: io.BufferedRandom | None = None
        self.small: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS[1:]}

    def append(
        self, x: np.ndarray, y: np.ndarray, record_index: np.ndarray, segment_index: np.ndarray
    ) -> None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.x_file is None:
            self.sample_shape = x.shape[1:]
            self.x_file = open(self.folder / "x.npy", "w+b")  # noqa: SIM115 (closed by close)
            self.header_len = self.x_file.write(self._header(0))
        elif x.shape[1:] != self.sample_shape:
            raise ValueError(
                f"windows of shape {x.shape[1:]} after windows of shape {self.sample_shape}: "
                "every record must give the same channels and window length"
            )
        parts = {"y": y, "record_index": record_index, "segment_index": segment_index}
        if any(len(a) != len(x) for a in parts.values()):
            raise ValueError(f"{len(x)} windows but {[len(a) for a in parts.values()]} labels")
        self.x_file.write(x.data)
        for name, a in parts.items():
            self.small[name].append(np.asarray(a, dtype=np.int64))
        self.n += len(x)

    def _header(self, n: int) -> bytes:
        buf = io.BytesIO()
        descr = np.lib.format.dtype_to_descr(np.dtype(np.float32))
        header = {"descr": descr, "fortran_order": False, "shape": (n, *self.sample_shape)}
        np.lib.format.write_array_header_1_0(buf, header)
        return buf.getvalue()

    def close(self) -> None:
        """Finish `x.npy` with the final count and save the per-window arrays."""
        if self.x_file is None:
            raise ValueError("no record was written to the cache")
        header = self._header(self.n)
        if len(header) != self.header_len:  # NumPy reserves room for 21 digits
            raise RuntimeError(f"x.npy header grew from {self.header_len} to {len(header)} bytes")
        self.x_file.seek(0)
        self.x_file.write(header)
        self.release()
        for name, parts in self.small.items():
            np.save(self.folder / f"{name}.npy", np.concatenate(parts).astype(np.int64))

    def release(self) -> None:
        """Close `x.npy` (also after a failed build, whose folder is then removed)."""
        if self.x_file is not None:
            self.x_file.close()


def cached_windows(
    cache_dir: Path, key: str, build: Callable[[WindowWriter], dict]
) -> tuple[CachedWindows, bool]:
    """Load the window cache entry `key`, building it first if absent.

    `build(writer)` appends every record's windows to `writer` in order and returns the meta.
    """

    def write(tmp: Path) -> None:
        writer = WindowWriter(tmp)
        try:
            meta = build(writer)
            writer.close()
        finally:
            writer.release()
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

    path, built = build_checked(cache_dir, key, write, f"the window cache {key}")
    return load_cached(path), built
