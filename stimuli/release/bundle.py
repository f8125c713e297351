"""Writing a bundle atomically, and reading and verifying one against `SHA256SUMS`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from stimuli.io import DiskFullError, disk_full, is_disk_full
from stimuli.release.forbidden import ForbiddenInfo
from stimuli.release.layout import (
    BUNDLE_FILES,
    CHECKSUMS,
    DATACARD,
    FIXED_MTIME,
    NPZ,
    ZIP_DATE,
    json_default,
)
from stimuli.release.leaks import LeakError, check_leaks


class BundleError(RuntimeError):
    """A bundle folder is incomplete or its files do not match `SHA256SUMS`."""


class ReleaseRefused(RuntimeError):
    """`release.require_verdict=true` and the mechanism has no passing anonymity verdict."""


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An `np.load`-able npz whose zip entries carry a fixed timestamp (no date, reproducible)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(value), allow_pickle=False)
    return buf.getvalue()


def bundle_files(arrays: Mapping[str, np.ndarray], datacard: Mapping[str, Any]) -> dict[str, bytes]:
    card = json.dumps(datacard, indent=2, default=json_default).encode() + b"\n"
    return {NPZ: npz_bytes(arrays), DATACARD: card}


def checksums(files: Mapping[str, bytes]) -> bytes:
    """`sha256sum -c` compatible lines for `files`."""
    lines = [
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ]
    return "".join(lines).encode()


def _recover_killed_write(dest: Path) -> None:
    """What a killed `write_release` left beside `dest`: the previous bundle moved aside (put
    back when `dest` is gone) and half-written temporary folders (removed)."""
    olds = sorted(dest.parent.glob(f".{dest.name}.old-*"))
    if olds and not dest.exists():
        os.replace(olds.pop(0), dest)
    for stale in [*olds, *dest.parent.glob(f".{dest.name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def write_release(dest: str | Path, files: Mapping[str, bytes], forbidden: ForbiddenInfo) -> Path:
    """Check, then write `files` and `SHA256SUMS` to the folder `dest` atomically.

    Raises `LeakError` (writing nothing) when `check_leaks` finds anything. The folder is built
    beside `dest` and renamed into place; an existing `dest` is replaced only once the new one is
    complete.
    """
    dest = Path(dest)
    for name in files:
        if name == CHECKSUMS or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"{name!r} is not a valid bundle file name")
    files = {**files, CHECKSUMS: checksums(files)}
    findings = check_leaks(files, forbidden)
    if findings:
        raise LeakError(findings)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _recover_killed_write(dest)
    needed = sum(len(data) for data in files.values())
    if shutil.disk_usage(dest.parent).free < needed:
        raise disk_full(dest, needed, "the release")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    old: Path | None = None
    try:
        for name, data in files.items():
            with (tmp / name).open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp / name, 0o644)
            os.utime(tmp / name, (FIXED_MTIME, FIXED_MTIME))
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        os.utime(dest, (FIXED_MTIME, FIXED_MTIME))
    except BaseException as err:
        if old is not None and not dest.exists():
            os.replace(old, dest)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            raise disk_full(dest, needed, "the release") from err
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


# --- reading a bundle ---------------------------------------------------------------------------
def verify_bundle(path: str | Path) -> dict[str, str]:
    """Check every file against `SHA256SUMS`; return `{file: sha256}`. Raises `BundleError`
    naming the file that is missing, altered or not listed."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: no such bundle folder (pass the `release/` folder of a run)")
    sums_path = path / CHECKSUMS
    if not sums_path.is_file():
        raise BundleError(f"{sums_path}: missing; a bundle lists its files' checksums there")
    listed: dict[str, str] = {}
    for i, line in enumerate(sums_path.read_text(errors="replace").splitlines(), 1):
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](\S.*)", line.strip())
        if not m or "/" in m.group(2) or m.group(2).startswith("."):
            raise BundleError(f"{sums_path}: line {i} is not '<sha256>  <file>': {line!r}")
        listed[m.group(2)] = m.group(1).lower()
    for name in BUNDLE_FILES:
        if name not in listed:
            raise BundleError(f"{sums_path}: does not list {name}; the bundle is incomplete")
    for name, digest in listed.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file}: missing (listed in {CHECKSUMS}); the bundle is incomplete")
        h = hashlib.sha256()
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != digest:
            raise BundleError(
                f"{file}: checksum mismatch ({CHECKSUMS} lists {digest[:12]}…, the file has "
                f"{h.hexdigest()[:12]}…); the file was altered or damaged"
            )
    extra = sorted(p.name for p in path.iterdir() if p.name != CHECKSUMS and p.name not in listed)
    if extra:
        raise BundleError(f"{path / extra[0]}: not listed in {CHECKSUMS} (unlisted: {extra})")
    return listed


def read_bundle(path: str | Path, verify: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, datacard) of a bundle, verified against `SHA256SUMS` first (`verify`)."""
    path = Path(path)
    if verify:
        verify_bundle(path)
    try:
        card = json.loads((path / DATACARD).read_text())
    except ValueError as err:
        raise BundleError(f"{path / DATACARD}: not valid JSON ({err})") from None
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path / NPZ, allow_pickle=False) as f:
            for name in f.files:
                arrays[name] = f[name]
    except ValueError as err:  # object arrays: loading them would run pickled code
        raise BundleError(
            f"{path / NPZ}: cannot be read without pickle ({err}); a bundle holds plain "
            "numeric arrays only, so this one was not written by stimuli: refuse it"
        ) from None
    except (OSError, zipfile.BadZipFile) as err:
        raise BundleError(f"{path / NPZ}: not a readable npz ({err})") from None
    return arrays, card
