"""Writing outputs atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


class DiskFullError(OSError):
    """No space left where an output is written; the message names the path, the space it
    needs (at least) and the space free."""


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def disk_full(path: str | Path, needed: int, what: str) -> DiskFullError:
    """The error for `what` (e.g. "the release") not fitting at `path`: `needed` bytes."""
    path = Path(path)
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    return DiskFullError(
        errno.ENOSPC,
        f"{path}: no space left for {what}: it needs at least {_mib(needed)}, "
        f"{_mib(free)} are free. Free some space or write elsewhere (paths.output_dir, "
        "STIMULI_CACHE); nothing was replaced, the previous version is intact",
    )


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


@contextmanager
def atomic_path(path: str | Path, needed: int = 0) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed to `path` when the block succeeds,
    removed when it fails (or never renamed when the process is killed: readers see the old
    file or the new one; the next write removes what a killed one left). Keeps the suffix, so
    `np.savez` and friends add nothing. `needed`: bytes, for the full-disk error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.stem}.*{path.suffix}"):  # a killed writer's
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            raise disk_full(path, needed, path.name) from err
        raise


def write_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path, len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, default=_default).encode() + b"\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
