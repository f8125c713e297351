"""Stage `release`: the bundle a data owner hands to third parties, and the leak check before it.

A bundle is a folder of three files:

- `stimuli.npz`: float32 `x (N, C, T)`, int64 `labels (N,)` and, with `release.soft_labels`,
  float32 `soft (N, K)` (the teacher's probabilities on the stimuli). Written as a zip whose
  entries carry a fixed 1980-01-01 timestamp, so the file holds no date and is reproducible.
- `datacard.json`: shapes, channels, sampling rate, window length, label names and counts, how the
  stimuli were made (whitelisted synthesis settings and teacher architecture) and, when the run
  measured it, the utility summary (teacher and students on the owner's test persons).
- `SHA256SUMS`: `sha256sum -c` compatible.

Nothing of the cohort reaches the bundle by construction (whitelists), and `check_leaks` scans
every text and array the bundle would contain before anything is written: record and file names,
person ids, EDF/WFDB header fields, dates, paths, state-dict-like keys, the teacher's (and
identity model's) parameters and BatchNorm statistics, and stimuli that are near copies of real
windows. Any finding raises `LeakError` and nothing is written. The folder is written atomically:
built beside `release/`, then renamed into place.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMAT = "stimuli-release-v1"
NPZ = "stimuli.npz"
DATACARD = "datacard.json"
CHECKSUMS = "SHA256SUMS"
BUNDLE_FILES = (NPZ, DATACARD)
ARRAY_KEYS = ("x", "labels", "soft")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: no date of making
FIXED_MTIME = 315532800  # 1980-01-01 00:00:00 UTC, for the files on disk

# --- what may go into the datacard (whitelists) -----------------------------------------------
SYNTHESIS_KEYS = (
    "n",
    "shard_size",
    "steps",
    "lr",
    "betas",
    "schedule",
    "targets",
    "max_shift",
    "shift_mode",
    "amp_jitter",
    "clip",
    "weights",
    "hidden_top_frac",
    "centroid_space",
    "centroid_margin",
    "centroid_temperature",
)
SYNTHESIS_WEIGHT_KEYS = (
    "class",
    "hidden",
    "bn",
    "tv",
    "l2",
    "identity_uniform",
    "identity_centroid",
    "diversity",
    "competition",
)
# Union of the hyperparameters of conf/model/*.yaml (cnn, resnet1d, lstm, gru, mlp, transformer).
MODEL_KEYS = (
    "_target_",
    "_partial_",
    "channels",
    "kernel_size",
    "pool_size",
    "dropout",
    "blocks_per_stage",
    "conv_channels",
    "max_steps",
    "hidden_size",
    "num_layers",
    "pooling",
    "hidden",
    "d_model",
    "nhead",
    "dim_feedforward",
    "max_tokens",
)
STIMULI_META_KEYS = ("n", "steps", "teacher_agreement")
METRIC_KEYS = ("acc", "kappa", "auroc", "f1")
_SAFE_STR = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")

# --- what the leak check looks for --------------------------------------------------------------
_EDGE_L, _EDGE_R = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
DATE_RE = re.compile(
    r"(?<![\d.])(?:"
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # ISO 2000-01-31, 2000/01/31
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"  # 31.01.00, 01/31/2000, EDF's dd.mm.yy
    rf"|\d{{1,2}}[-\s]?(?:{_MONTHS})[a-z]*[-\s,]*\d{{2,4}}"  # 01-JAN-2000, 1 Jan 2000
    rf"|(?:{_MONTHS})[a-z]*\s+\d{{1,2}},?\s+\d{{4}}"  # Jan 1, 2000
    r")(?![\d.])",
    re.IGNORECASE,
)
PATH_RE = re.compile(r"(?<![\w.])(?:~|\.{1,2})?(?:/[\w.@+-]+){2,}/?|(?<![\w])[A-Za-z]:\\|~/")
DATA_FILE_RE = re.compile(
    _EDGE_L + r"[\w-]+\.(?:edf|bdf|rec|hea|dat|qrs|apn|atr|xml|st|ecg|mat|csv)" + _EDGE_R,
    re.IGNORECASE,
)
STATE_KEY_RE = re.compile(
    r"running_mean|running_var|num_batches_tracked|state_dict|(?:^|\.)(?:weight|bias)$",
    re.IGNORECASE,
)
PERSON_KEY_RE = re.compile(
    r"(?:^|[_.\s-])(?:persons?|subjects?|patients?|records?|record_index|segment_index|his_id"
    r"|birthday|birthdate|meas_date)(?:$|[_.\s-])",
    re.IGNORECASE,
)
_EDF_PLACEHOLDERS = {"x", "startdate"}


class LeakError(RuntimeError):
    """The bundle would carry private information; `findings` lists every leak found."""

    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = list(findings)
        super().__init__(
            f"the release would leak private information ({len(self.findings)} finding(s)); "
            "nothing was written:\n  - " + "\n  - ".join(self.findings)
        )


class BundleError(RuntimeError):
    """A bundle folder is incomplete or its files do not match `SHA256SUMS`."""


# --- forbidden information ------------------------------------------------------------------------
@dataclass
class ForbiddenInfo:
    """What must not appear in a bundle. Terms map to where they come from (for the findings)."""

    names: dict[str, str] = field(default_factory=dict)  # record and file names
    persons: dict[str, str] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)  # EDF/WFDB header fields and tokens
    dates: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # "teacher.<state-dict key>"
    windows: np.ndarray | None = None  # every real window, as the teacher sees it (N, C, T)
    train_windows: np.ndarray | None = None  # the training split (threshold of the copy check)
    copy_sample: int = 3000
    copy_percentile: float = 1.0
    seed: int = 0
    copy_stats: dict = field(default_factory=dict)  # filled by the copy check
    _patterns: dict = field(default_factory=dict, repr=False)
    _copy: tuple | None = field(default=None, repr=False)

    def term_patterns(self) -> list[tuple[str, dict[str, str], re.Pattern]]:
        if not self._patterns:
            for kind in ("names", "persons", "header", "dates", "paths"):
                terms: dict[str, str] = {}
                for t, src in getattr(self, kind).items():
                    if t.strip() and t.strip() not in ("/", "."):
                        terms.setdefault(t.strip().lower(), src)
                if terms:
                    alt = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
                    pat = re.compile(_EDGE_L + f"(?:{alt})" + _EDGE_R, re.IGNORECASE)
                    self._patterns[kind] = (terms, pat)
        return [(k, t, p) for k, (t, p) in self._patterns.items()]

    def copy_index(self) -> tuple[Any, float, float] | None:
        """(nearest-neighbour index over every real window, threshold, exact-copy tolerance)."""
        if self.windows is None or len(self.windows) == 0:
            return None
        if self._copy is None:
            from sklearn.neighbors import NearestNeighbors

            train = self.train_windows if self.train_windows is not None else self.windows
            train = np.asarray(train, dtype=np.float32).reshape(len(train), -1)
            rng = np.random.default_rng(self.seed)
            sample = rng.choice(len(train), min(len(train), self.copy_sample), replace=False)
            nn_train = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(train)
            dist, idx = nn_train.kneighbors(train[sample], n_neighbors=min(2, len(train)))
            # the nearest other window (a query's first hit is itself, unless it has a duplicate)
            own = idx[:, 0] == sample
            nearest = np.where(own, dist[:, -1], dist[:, 0]) if dist.shape[1] > 1 else dist[:, 0]
            threshold = float(np.percentile(nearest, self.copy_percentile))
            tol = 1e-4 * float(np.median(nearest)) if len(nearest) else 0.0
            real = np.asarray(self.windows, dtype=np.float32).reshape(len(self.windows), -1)
            nn_all = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(real)
            self._copy = (nn_all, threshold, tol)
            self.copy_stats.update(
                threshold=round(threshold, 6),
                percentile=self.copy_percentile,
                real_to_real_median=round(float(np.median(nearest)), 6),
                sampled_windows=len(sample),
                reference_windows=len(real),
            )
        return self._copy


def _date_strings(value: date | datetime) -> set[str]:
    fmts = ["%Y-%m-%d", "%d.%m.%y", "%d.%m.%Y", "%d-%b-%Y", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d"]
    fmts += ["%Y%m%d", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y"]
    out = {value.strftime(f) for f in fmts}
    if isinstance(value, datetime):
        out |= {value.strftime("%H:%M:%S"), value.strftime("%H.%M.%S")}
    return out


def _tokens(field_text: str) -> set[str]:
    """Identifying tokens of a header field: the whole field and its words (EDF+ writes spaces
    inside a subfield as `_`), without EDF+ placeholders, sex letters and numbers."""
    field_text = field_text.strip()
    out = {field_text} if len(field_text) >= 3 else set()
    for word in re.split(r"[\s_]+", field_text):
        word = word.strip(",;:<>()[]")
        if len(word) >= 3 and word.lower() not in _EDF_PLACEHOLDERS and not word.isdigit():
            out.add(word)
    return out


def edf_header_terms(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """(header terms, dates) of one EDF/EDF+ file: the raw 80-character patient and recording
    fields and start date/time, and mne's `subject_info` names and `meas_date`."""
    path = Path(path)
    terms: dict[str, str] = {}
    dates: dict[str, str] = {}
    with path.open("rb") as fh:
        head = fh.read(184)
    fields = {
        "patient": head[8:88].decode("latin-1", "replace"),
        "recording": head[88:168].decode("latin-1", "replace"),
    }
    for kind, text in fields.items():
        for token in _tokens(text):
            src = f"EDF {kind} field of {path.name}"
            if DATE_RE.fullmatch(token):
                dates.setdefault(token, src)
            else:
                terms.setdefault(token, src)
    for raw_date in (head[168:176], head[176:184]):
        text = raw_date.decode("latin-1", "replace").strip()
        if text:
            dates.setdefault(text, f"EDF start date/time of {path.name}")
    try:
        import mne

        raw = mne.io.read_raw_edf(path, preload=False, verbose="error")
        info = raw.info
        subject = info.get("subject_info") or {}
        for key in ("his_id", "first_name", "middle_name", "last_name"):
            value = subject.get(key)
            if isinstance(value, str) and value.strip():
                for token in _tokens(value):
                    terms.setdefault(token, f"EDF subject_info {key} of {path.name}")
        for key, value in (
            ("meas_date", info.get("meas_date")),
            ("birthday", subject.get("birthday")),
        ):
            if isinstance(value, (date, datetime)):
                for text in _date_strings(value):
                    dates.setdefault(text, f"EDF {key} of {path.name}")
    except Exception as err:  # the raw fields above are still scanned
        log.warning("%s: mne could not read the EDF header (%s); raw fields only", path, err)
    return terms, dates


def wfdb_header_terms(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """(comment terms, dates) of one WFDB `.hea` header: base date/time and comments."""
    path = Path(path)
    terms: dict[str, str] = {}
    dates: dict[str, str] = {}
    try:
        import wfdb

        header = wfdb.rdheader(str(path.with_suffix("")))
    except Exception as err:
        log.warning("%s: cannot read the WFDB header (%s)", path, err)
        return terms, dates
    base_date = getattr(header, "base_date", None)
    base_time = getattr(header, "base_time", None)
    if isinstance(base_date, date):
        stamp = datetime.combine(base_date, base_time) if isinstance(base_time, time) else base_date
        for text in _date_strings(stamp):
            dates.setdefault(text, f"WFDB base date of {path.name}")
    elif isinstance(base_time, time):
        for text in (base_time.strftime("%H:%M:%S"), base_time.strftime("%H.%M.%S")):
            dates.setdefault(text, f"WFDB base time of {path.name}")
    for comment in getattr(header, "comments", None) or []:
        for token in _tokens(str(comment)):
            if DATE_RE.fullmatch(token):
                dates.setdefault(token, f"WFDB comment of {path.name}")
            else:
                terms.setdefault(token, f"WFDB comment of {path.name}")
    return terms, dates


def state_arrays(prefix: str, model: Any) -> dict[str, np.ndarray]:
    """A model's state dict (parameters and buffers, BatchNorm statistics included) as arrays."""
    if model is None:
        return {}
    return {f"{prefix}.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def forbidden_info(
    dm: Any,
    models: Mapping[str, Any] | None = None,
    extra_paths: Iterable[str | Path] = (),
    copy_sample: int = 3000,
    copy_percentile: float = 1.0,
    seed: int = 0,
) -> ForbiddenInfo:
    """Everything a bundle from this cohort DataModule (set up) and these models must not carry."""
    cache = dm.load_cache()
    records = cache.meta["records"]
    info = ForbiddenInfo(copy_sample=copy_sample, copy_percentile=copy_percentile, seed=seed)
    for r in records:
        info.names[str(r["record"])] = "record name"
        info.persons[str(r["person"])] = "person id"
    names = [str(r["record"]) for r in records]
    try:
        files = [Path(f) for f in dm.source_files(names)]
    except Exception as err:  # the file list keys the cache, so this is unexpected
        log.warning("cannot list the cohort's files (%s)", err)
        files = []
    for f in files:
        info.names.setdefault(f.name, "file name")
        info.names.setdefault(f.stem, "file name")
        suffix = f.suffix.lower()
        if suffix in (".edf", ".bdf", ".rec") and f.is_file():
            terms, dates = edf_header_terms(f)
        elif suffix == ".hea" and f.is_file():
            terms, dates = wfdb_header_terms(f)
        else:
            continue
        for t, src in terms.items():
            info.header.setdefault(t, src)
        for t, src in dates.items():
            info.dates.setdefault(t, src)
    for p in [dm.root, getattr(dm, "cache_dir", None), cache.path, *extra_paths]:
        if p:
            p = str(Path(p).expanduser())
            info.paths.setdefault(p, "path")
            info.paths.setdefault(str(Path(p).resolve()), "path")
    for prefix, model in (models or {}).items():
        info.tensors.update(state_arrays(prefix, model))
    if getattr(dm, "datasets", None):
        splits = [dm.datasets[s].arrays()[0] for s in dm.datasets]
        info.windows = np.concatenate(splits)
        info.train_windows = dm.datasets["train"].arrays()[0] if "train" in dm.datasets else None
    return info


# --- the leak check -------------------------------------------------------------------------------
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
    if forbidden.windows is None or x.ndim != 3 or x.shape[1:] != forbidden.windows.shape[1:]:
        return []
    nn, threshold, tol = forbidden.copy_index()
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if not np.isfinite(flat).all():
        return [f"{where}: holds non-finite values"]
    dist = nn.kneighbors(flat, n_neighbors=1)[0][:, 0]
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
                json.loads(json.dumps(content, default=_json_default)), name, forbidden
            )
        elif isinstance(content, str):
            hits += _scan_text(content, name, forbidden)
        else:
            hits.append(f"{name}: content of type {type(content).__name__} cannot be checked")
    return list(dict.fromkeys(hits))


# --- building the bundle --------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _safe_value(value: Any) -> Any:
    """A number, bool, null, short plain string or list of them; anything else raises."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ValueError("non-finite number")
        return float(value)
    if isinstance(value, str):
        if _SAFE_STR.fullmatch(value) and not DATE_RE.search(value):
            return value
        raise ValueError(f"string {value!r} is not a plain identifier")
    if isinstance(value, (list, tuple)):
        return [_safe_value(v) for v in value]
    raise ValueError(f"{type(value).__name__} is not allowed")


def whitelisted(cfg: Mapping[str, Any] | None, keys: Sequence[str], where: str) -> dict:
    """The entries of `cfg` named in `keys` whose values are plain; the rest is left out."""
    out: dict[str, Any] = {}
    for key in keys:
        if not cfg or key not in cfg:
            continue
        try:
            out[key] = _safe_value(cfg[key])
        except ValueError as err:
            log.warning("datacard: %s.%s left out (%s)", where, key, err)
    return out


def _plain(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return cfg


def utility_summary(results: Mapping[str, Any]) -> dict | None:
    """Teacher and student scores on the owner's test persons (metrics only), when measured."""
    out: dict[str, Any] = {}
    teacher = (results.get("teacher") or {}).get("test")
    if isinstance(teacher, Mapping):
        out["teacher"] = whitelisted(teacher, METRIC_KEYS, "teacher")
    students = {}
    for name, block in (results.get("students") or {}).items():
        if not (isinstance(name, str) and _SAFE_STR.fullmatch(name)):
            continue
        variants = {}
        for variant, metrics in (block or {}).items():
            if (
                isinstance(variant, str)
                and _SAFE_STR.fullmatch(variant)
                and isinstance(metrics, Mapping)
            ):
                variants[variant] = whitelisted(metrics, METRIC_KEYS, f"{name}.{variant}")
        students[name] = variants
    if students:
        out["students"] = students
    if not out:
        return None
    out["scored_on"] = "windows of the data owner's held-out test persons"
    return out


def make_datacard(
    arrays: Mapping[str, np.ndarray],
    *,
    channels: Sequence[str],
    fs: float,
    label_names: Sequence[str],
    normalize: str,
    synthesis: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    stimuli_meta: Mapping[str, Any] | None = None,
    results: Mapping[str, Any] | None = None,
) -> dict:
    """The datacard, built from whitelisted fields only."""
    x, labels = arrays["x"], arrays["labels"]
    n, n_chans, n_times = (int(s) for s in x.shape)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(label_names))
    synthesis = _plain(synthesis) or {}
    synth = whitelisted(synthesis, [k for k in SYNTHESIS_KEYS if k != "weights"], "synthesis")
    if isinstance(synthesis.get("weights"), Mapping):
        synth["weights"] = whitelisted(synthesis["weights"], SYNTHESIS_WEIGHT_KEYS, "weights")
    card: dict[str, Any] = {
        "format": FORMAT,
        "files": {
            NPZ: {
                k: {"dtype": str(a.dtype), "shape": [int(s) for s in a.shape]}
                for k, a in arrays.items()
            }
        },
        "n": n,
        "channels": [_safe_value(str(c)) for c in channels],
        "fs": float(fs),
        "window": {"seconds": n_times / float(fs), "samples": n_times},
        "normalize": _safe_value(normalize),
        "labels": {
            "names": [_safe_value(str(s)) for s in label_names],
            "counts": {str(s): int(c) for s, c in zip(label_names, counts, strict=False)},
        },
        "soft_labels": "soft" in arrays,
        "synthesis": synth,
        "teacher": {
            "architecture": whitelisted(_plain(model), MODEL_KEYS, "model"),
            "n_chans": n_chans,
            "n_times": n_times,
            "n_outputs": len(label_names),
        },
    }
    if stimuli_meta:
        card["stimuli"] = whitelisted(stimuli_meta, STIMULI_META_KEYS, "stimuli")
    utility = utility_summary(results or {})
    if utility:
        card["utility"] = utility
    return card


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
    card = json.dumps(datacard, indent=2, default=_json_default).encode() + b"\n"
    return {NPZ: npz_bytes(arrays), DATACARD: card}


def checksums(files: Mapping[str, bytes]) -> bytes:
    """`sha256sum -c` compatible lines for `files`."""
    lines = [
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ]
    return "".join(lines).encode()


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
    except BaseException:
        if old is not None and not dest.exists():
            os.replace(old, dest)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
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
    card = json.loads((path / DATACARD).read_text())
    with np.load(path / NPZ, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, card


# --- the stage ------------------------------------------------------------------------------------
def release_contents(run: Any) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, datacard) of the bundle of a `pipeline.Run` whose data stage ran."""
    cfg, dm = run.cfg, run.dm
    rcfg = _plain(cfg.get("release")) or {}
    run.teacher_model()  # fills results["teacher"] (the utility summary reads it)
    stim = run.stimuli()
    arrays = {
        "x": np.ascontiguousarray(stim["x"], dtype=np.float32),
        "labels": np.asarray(stim["labels"], dtype=np.int64),
    }
    if rcfg.get("soft_labels", True):
        arrays["soft"] = np.ascontiguousarray(stim["teacher_probs"], dtype=np.float32)
    card = make_datacard(
        arrays,
        channels=dm.channels,
        fs=dm.fs,
        label_names=dm.label_names,
        normalize=dm.normalize,
        synthesis=cfg.synthesis,
        model=cfg.model,
        stimuli_meta=run.results.get("stimuli"),
        results=run.results,
    )
    return arrays, card


def forbidden_for_run(run: Any) -> ForbiddenInfo:
    """What a bundle of this run must not carry: its cohort, its models, its paths."""
    from stimuli.paths import REPO_ROOT

    cfg = run.cfg
    rcfg = _plain(cfg.get("release")) or {}
    models = {"teacher": run.teacher_model()}
    if rcfg.get("check_identity_model", True):
        models["identity"] = run.identity_model()
    copy_cfg = rcfg.get("copy_check") or {}
    return forbidden_info(
        run.dm,
        models,
        extra_paths=[run.out, run.cache_dir, Path.home(), REPO_ROOT],
        copy_sample=int(copy_cfg.get("max_windows", 3000)),
        copy_percentile=float(copy_cfg.get("percentile", 1.0)),
        seed=int(cfg.seed),
    )


def release_stage(run: Any) -> dict:
    """Stage `release` of a `pipeline.Run`: build, check and write `release/` in the run folder."""
    arrays, card = release_contents(run)
    forbidden = forbidden_for_run(run)
    dest = write_release(run.out / "release", bundle_files(arrays, card), forbidden)
    sums = verify_bundle(dest)
    log.info("release: %d stimuli written to %s", len(arrays["x"]), dest)
    return {
        "path": str(dest),
        "n": len(arrays["x"]),
        "soft_labels": "soft" in arrays,
        "sha256": sums,
        "copy_check": dict(forbidden.copy_stats),
    }
