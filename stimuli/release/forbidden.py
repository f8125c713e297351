"""What a bundle must not carry: names, header fields and dates of the cohort, its paths,
the models' tensors and the real windows (for the copy check)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np

from stimuli.data.datasets import RowView
from stimuli.release.patterns import DATE_RE, EDF_PLACEHOLDERS, EDGE_L, EDGE_R

log = logging.getLogger(__name__)


@dataclass
class ForbiddenInfo:
    """What must not appear in a bundle. Terms map to where they come from (for the findings)."""

    names: dict[str, str] = field(default_factory=dict)  # record and file names
    persons: dict[str, str] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)  # EDF/WFDB header fields and tokens
    dates: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # "teacher.<state-dict key>"
    # every real window, as the teacher sees it: arrays or row views (N, C, T), one per split,
    # read a chunk at a time by the copy check, so the cohort is never held whole
    windows: list[np.ndarray | RowView] = field(default_factory=list)
    train_windows: np.ndarray | RowView | None = None  # threshold of the copy check
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
                    pat = re.compile(EDGE_L + f"(?:{alt})" + EDGE_R, re.IGNORECASE)
                    self._patterns[kind] = (terms, pat)
        return [(k, t, p) for k, (t, p) in self._patterns.items()]

    def window_shape(self) -> tuple[int, ...] | None:
        """(C, T) of the real windows, or None without any."""
        filled = [w for w in self.windows if len(w)]
        return tuple(filled[0].shape[1:]) if filled else None

    def reference_windows(self) -> int:
        return sum(len(w) for w in self.windows)

    def copy_threshold(self) -> tuple[float, float]:
        """(threshold, exact-copy tolerance) of the copy check: the `copy_percentile`th
        percentile of real-to-real nearest distances over a sample of training windows."""
        if self._copy is None:
            from stimuli.privacy.neighbours import nearest_other

            train = self.train_windows if self.train_windows is not None else self.windows[0]
            rng = np.random.default_rng(self.seed)
            sample = rng.choice(len(train), min(len(train), self.copy_sample), replace=False)
            nearest = nearest_other(train, np.sort(sample))
            threshold = float(np.percentile(nearest, self.copy_percentile))
            tol = 1e-4 * float(np.median(nearest)) if len(nearest) else 0.0
            self._copy = (threshold, tol)
            self.copy_stats.update(
                threshold=round(threshold, 6),
                percentile=self.copy_percentile,
                real_to_real_median=round(float(np.median(nearest)), 6),
                sampled_windows=len(sample),
                reference_windows=self.reference_windows(),
            )
        return self._copy

    def nearest_real(self, x: np.ndarray) -> np.ndarray:
        """Distance of each of `x` (N, C, T) to its nearest real window of any split."""
        from stimuli.privacy.neighbours import knn

        return np.min([knn(w, x, k=1)[0][:, 0] for w in self.windows if len(w)], axis=0)


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
        if len(word) >= 3 and word.lower() not in EDF_PLACEHOLDERS and not word.isdigit():
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
    if getattr(dm, "datasets", None):  # views of the memory-mapped cache, read chunk by chunk
        info.windows = [dm.datasets[s].view() for s in dm.datasets]
        info.train_windows = dm.datasets["train"].view() if "train" in dm.datasets else None
    return info
