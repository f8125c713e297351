"""The leak check: every text and array a bundle would hold, scanned before anything is written."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from stimuli.release.forbidden import ForbiddenInfo
from stimuli.release.layout import ZIP_DATE, json_default
from stimuli.release.patterns import DATA_FILE_RE, DATE_RE, PATH_RE, PERSON_KEY_RE, STATE_KEY_RE


class LeakError(RuntimeError):
    """The bundle would carry private information; `findings` lists every leak found."""

    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = list(findings)
        super().__init__(
            f"the release would leak private information ({len(self.findings)} finding(s)); "
            "nothing was written:\n  - " + "\n  - ".join(self.findings)
        )


def _scan_text(text: str, where: str, forbidden: ForbiddenInfo) -> list[str]:
    hits = []
    labels = {
        "names": "record/file name",
        "persons": "person id",
        "header": "header field",
        "dates": "recording date/time",
        "paths": "path",
    }
    for kind, terms, pattern in forbidden.term_patterns():
        seen = set()
        for m in pattern.finditer(text):
            term = m.group(0).lower()
            if term not in seen:  # once per term and place, whatever its case
                seen.add(term)
                hits.append(f"{where}: {labels[kind]} {m.group(0)!r} ({terms.get(term, kind)})")
    for m in DATE_RE.finditer(text):
        hits.append(f"{where}: date-like string {m.group(0)!r}")
    for m in PATH_RE.finditer(text):
        hits.append(f"{where}: path {m.group(0)!r}")
    for m in DATA_FILE_RE.finditer(text):
        hits.append(f"{where}: data file name {m.group(0)!r}")
    return hits


def _scan_key(key: str, where: str, forbidden: ForbiddenInfo) -> list[str]:
    hits = _scan_text(key, where, forbidden)
    bare = {k.split(".", 1)[1] for k in forbidden.tensors}
    if STATE_KEY_RE.search(key) or key in bare:
        hits.append(f"{where}: key {key!r} is named like a model state-dict entry")
    if PERSON_KEY_RE.search(key):
        hits.append(f"{where}: key {key!r} is named like a person/record field")
    return hits


def _tensor_hits(values: np.ndarray, where: str, forbidden: ForbiddenInfo) -> list[str]:
    """Arrays equal to, or holding a copy of, a model parameter or BatchNorm statistic."""
    a = np.asarray(values)
    if a.dtype.kind not in "fiu" or a.size < 2:
        return []
    hits = []
    flat = a.reshape(-1).astype(np.float64)
    blob = np.ascontiguousarray(a).tobytes() if a.dtype in (np.float32, np.float64) else None
    for name, t in forbidden.tensors.items():
        if t.dtype.kind != "f" or t.size < 2:
            continue
        tv = t.reshape(-1).astype(np.float64)
        if np.ptp(tv) == 0:  # a constant tensor (e.g. untouched init) carries nothing
            continue
        if a.size == t.size:
            if np.allclose(flat, tv, rtol=1e-5, atol=1e-7):
                hits.append(f"{where}: equals {name} (shape {tuple(t.shape)})")
        elif (
            blob is not None
            and a.size > t.size
            and t.size >= 4
            and t.astype(a.dtype).tobytes() in blob
        ):
            hits.append(f"{where}: contains a copy of {name} (shape {tuple(t.shape)})")
    return hits


def _copy_hits(x: np.ndarray, where: str, forbidden: ForbiddenInfo) -> list[str]:
    """Stimuli within copy distance of a real window of the cohort."""
    if x.ndim != 3 or x.shape[1:] != forbidden.window_shape() or len(x) == 0:
        return []
    threshold, tol = forbidden.copy_threshold()
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        return [f"{where}: holds non-finite values"]
    dist = forbidden.nearest_real(x)
    forbidden.copy_stats["stimulus_nearest_min"] = round(float(dist.min()), 6)
    forbidden.copy_stats["stimulus_nearest_median"] = round(float(np.median(dist)), 6)
    close = np.flatnonzero((dist < threshold) | (dist <= tol))
    forbidden.copy_stats["flagged"] = len(close)
    if len(close) == 0:
        return []
    shown = ", ".join(str(int(i)) for i in close[:20]) + (" …" if len(close) > 20 else "")
    return [
        f"{where}: {len(close)} stimuli are near copies of real windows (indices {shown}; "
        f"nearest distance {dist[close].min():.4g} < threshold {threshold:.4g}, the "
        f"{forbidden.copy_percentile:g}th percentile of real-to-real nearest distances)"
    ]


def _scan_arrays(arrays: Mapping[str, np.ndarray], where: str, forbidden: ForbiddenInfo) -> list:
    hits = []
    for key, value in arrays.items():
        at = f"{where}:{key}"
        hits += _scan_key(key, f"{at} (array name)", forbidden)
        a = np.asarray(value)
        if a.dtype.kind == "O":
            hits.append(f"{at}: object array (may hold anything; only numeric arrays are allowed)")
            continue
        if a.dtype.kind in "US":
            for s in a.reshape(-1):
                text = s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s)
                hits += _scan_text(text, at, forbidden)
            continue
        hits += _tensor_hits(a, at, forbidden)
        if a.dtype.kind == "f":
            hits += _copy_hits(a, at, forbidden)
    return hits


def _numeric_leaves(value: Any) -> list[float] | None:
    """The numbers of a (nested) JSON list, or None when it holds anything else."""
    out: list[float] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            return None
    return out


def _walk_json(obj: Any, where: str) -> Iterator[tuple[str, str, Any]]:
    """(kind, location, value) for every key ("key"), string ("str") and numeric list ("nums")."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield "key", f"{where}.{k}", str(k)
            yield from _walk_json(v, f"{where}.{k}")
    elif isinstance(obj, list):
        nums = _numeric_leaves(obj)
        if nums is not None:
            if len(nums) >= 2:
                yield "nums", where, nums
            return
        for i, v in enumerate(obj):
            yield from _walk_json(v, f"{where}[{i}]")
    elif isinstance(obj, str):
        yield "str", where, obj


def _scan_json(obj: Any, where: str, forbidden: ForbiddenInfo) -> list[str]:
    hits = []
    for kind, at, value in _walk_json(obj, "$"):
        loc = f"{where} {at}"
        if kind == "key":
            hits += _scan_key(value, loc, forbidden)
        elif kind == "str":
            hits += _scan_text(value, loc, forbidden)
        else:
            hits += _tensor_hits(np.asarray(value, dtype=np.float64), loc, forbidden)
            hits += _tensor_hits(np.asarray(value, dtype=np.float32), loc, forbidden)
    return sorted(set(hits), key=hits.index)


def _scan_npz(data: bytes, where: str, forbidden: ForbiddenInfo) -> list[str]:
    hits = []
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return [f"{where}: not a readable npz (zip) file, cannot be checked"]
    with zf:
        if zf.comment:
            hits += _scan_text(
                zf.comment.decode("utf-8", "replace"), f"{where} (zip comment)", forbidden
            )
            hits.append(f"{where}: the zip carries a comment")
        for info in zf.infolist():
            if info.date_time != ZIP_DATE:
                y, mo, d, h, mi, sec = info.date_time
                stamp = f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{sec:02d}"
                hits.append(f"{where}:{info.filename}: zip entry timestamp {stamp} (a date)")
            if info.extra or info.comment:
                hits.append(f"{where}:{info.filename}: zip entry carries extra fields or a comment")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as err:  # object arrays need pickle
        return [*hits, f"{where}: arrays that cannot be loaded without pickle ({err})"]
    return hits + _scan_arrays(arrays, where, forbidden)


def check_leaks(bundle_files: Mapping[str, Any], forbidden: ForbiddenInfo) -> list[str]:
    """Every leak the bundle `{file name: content}` would carry; empty when it is clean.

    Content is bytes (dispatched on the name: `.npz` arrays, `.json` JSON, anything else text), a
    mapping of arrays, a JSON-like dict/list, a string or an array. Only text (JSON strings and
    keys, array names, text files) is searched for names, header fields, dates and paths, so a
    record name never matches inside a number.
    """
    hits: list[str] = []
    for name, content in bundle_files.items():
        hits += _scan_text(name, f"file name {name!r}", forbidden)
        if isinstance(content, (bytes, bytearray, memoryview)):
            data = bytes(content)
            if name.endswith(".npz"):
                hits += _scan_npz(data, name, forbidden)
                continue
            text = data.decode("utf-8", "replace")
            if name.endswith(".json"):
                try:
                    hits += _scan_json(json.loads(text), name, forbidden)
                    continue
                except json.JSONDecodeError:
                    hits.append(f"{name}: not valid JSON; scanned as text")
            hits += _scan_text(text, name, forbidden)
        elif isinstance(content, np.ndarray):
            hits += _scan_arrays({"": content}, name, forbidden)
        elif (
            isinstance(content, Mapping)
            and all(isinstance(v, np.ndarray) for v in content.values())
            and content
        ):
            hits += _scan_arrays(content, name, forbidden)
        elif isinstance(content, (dict, list)):
            hits += _scan_json(
                json.loads(json.dumps(content, default=json_default)), name, forbidden
            )
        elif isinstance(content, str):
            hits += _scan_text(content, name, forbidden)
        else:
            hits.append(f"{name}: content of type {type(content).__name__} cannot be checked")
    return list(dict.fromkeys(hits))
