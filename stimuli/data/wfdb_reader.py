"""Reading PhysioNet's Apnea-ECG layout (WFDB): minute labels, beat times, waveforms, persons.

Every reader raises `CohortError` naming the file for anything it cannot read.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import wfdb

from stimuli.data.recording import CohortError, Recording, check_rate
from stimuli.data.signal import resample

APNEA_SYMBOLS = {"A": 1, "N": 0}
MINUTE_S = 60.0


def discover_records(root: Path, record_regex: str) -> list[str]:
    """Record names with a header and minute labels, e.g. a01…c10 (not the `er`/`r` variants)."""
    pattern = re.compile(record_regex)
    listed = root / "RECORDS"
    names = listed.read_text().split() if listed.is_file() else [p.stem for p in root.glob("*.hea")]
    return sorted(n for n in set(names) if pattern.fullmatch(n) and (root / f"{n}.apn").is_file())


def person_table(root: Path) -> dict[str, str]:
    """Record → person id, from PhysioNet's `additional-information*.txt`.

    The table has one row per record; records of one person share age, sex, height and weight,
    so identical rows are grouped and named after their first record.
    """
    rows: dict[str, tuple[str, ...]] = {}
    for path in sorted(root.glob("additional-information*.txt")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 12 and re.fullmatch(r"[a-z]\d\d", parts[0]):
                rows[parts[0]] = tuple(parts[8:12])  # age, sex, height, weight
    first_of: dict[tuple[str, ...], str] = {}
    for name in sorted(rows):
        first_of.setdefault(rows[name], name)
    return {name: first_of[row] for name, row in rows.items()}


def persons_for(root: Path, records: Sequence[str]) -> dict[str, str]:
    table = person_table(root)
    missing = [r for r in records if r not in table]
    if missing:
        warnings.warn(
            f"{root}: no additional-information row for {', '.join(missing)}; each is taken as its "
            "own person. Put PhysioNet's additional-information.txt in the folder to group nights "
            "by person.",
            UserWarning,
            stacklevel=2,
        )
    return {r: table.get(r, r) for r in records}


def minute_labels(root: Path, label_record: str, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """`[start, stop)` sample spans at `fs` and 0/1 labels of each scored minute."""
    path = root / f"{label_record}.apn"
    if not path.is_file():
        raise CohortError(f"{path}: minute labels are missing. Add the record's .apn file.")
    try:
        ann = wfdb.rdann(str(root / label_record), "apn")
    except Exception as err:
        raise CohortError(
            f"{path}: cannot read the annotation file ({err}). Re-download it."
        ) from err
    unknown = sorted(set(ann.symbol) - set(APNEA_SYMBOLS), key=str)  # a bad code reads as NaN
    if unknown:
        raise CohortError(
            f"{path}: unexpected label symbols {unknown}; expected A or N per minute."
        )
    ann_fs = float(ann.fs or 100.0)
    sample = np.asarray(ann.sample, dtype=np.int64)
    ordered = np.all(sample >= 0) and np.all(np.diff(sample) > 0)
    if not (np.isfinite(ann_fs) and ann_fs > 0 and ordered):
        raise CohortError(
            f"{path}: corrupt minute labels (positions not increasing from 0, or a sampling "
            f"rate of {ann_fs:g} Hz from the file or the record's .hea). Re-download them."
        )
    starts = np.round(sample / ann_fs * fs).astype(np.int64)
    segments = np.stack([starts, starts + round(MINUTE_S * fs)], axis=1)
    labels = np.array([APNEA_SYMBOLS[s] for s in ann.symbol], dtype=np.int64)
    return segments, labels


def rr_series(
    root: Path,
    record: str,
    fs: float,
    min_rr_s: float = 0.3,
    max_rr_s: float = 2.0,
    max_gap_s: float = 10.0,
) -> np.ndarray:
    """RR intervals from the `.qrs` beat annotations on a regular grid at `fs`, shape `(1, n)`.

    Intervals outside `[min_rr_s, max_rr_s]` are physiologically implausible (missed or extra beat
    detections) and are dropped; the series is linearly interpolated across them, but where no valid
    interval ends within `max_gap_s` of a grid point the value is NaN, so such windows are dropped.
    """
    qrs = root / f"{record}.qrs"
    if not qrs.is_file():
        raise CohortError(
            f"{qrs}: beat annotations are missing; modality 'rri' needs them. Download the "
            "record's "
            ".qrs file (data.download=true) or choose modality 'ecg' with the .dat waveform."
        )
    hea = root / f"{record}.hea"
    try:
        header = wfdb.rdheader(str(root / record))
    except Exception as err:
        raise CohortError(f"{hea}: cannot read the record header ({err}). Re-download it.") from err
    check_rate(hea, header.fs, header.sig_len, "Re-download it.")
    try:
        ann = wfdb.rdann(str(root / record), "qrs")
    except Exception as err:
        raise CohortError(f"{qrs}: cannot read the beats ({err}). Re-download them.") from err
    beat_fs = float(ann.fs or header.fs)
    beats_s = np.asarray(ann.sample, dtype=np.float64) / beat_fs
    if not (np.isfinite(beat_fs) and beat_fs > 0) or np.any(np.diff(beats_s) < 0):
        raise CohortError(
            f"{qrs}: corrupt beat annotations (sampling rate {beat_fs:g} Hz, beat times not in "
            "order). Re-download them."
        )
    rr = np.diff(beats_s)
    t = beats_s[1:]
    ok = (rr >= min_rr_s) & (rr <= max_rr_s)
    t, rr = t[ok], rr[ok]
    n = int(np.floor(header.sig_len / header.fs * fs))
    grid = np.arange(n) / fs
    if len(t) < 2:
        return np.full((1, n), np.nan, dtype=np.float32)
    series = np.interp(grid, t, rr)
    nearest = np.searchsorted(t, grid)
    prev_t = t[np.clip(nearest - 1, 0, len(t) - 1)]
    next_t = t[np.clip(nearest, 0, len(t) - 1)]
    gap = np.minimum(np.abs(grid - prev_t), np.abs(next_t - grid))
    series[gap > max_gap_s] = np.nan
    return series[None, :].astype(np.float32)


def waveform(
    root: Path, record: str, fs: float, channels: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Signals of a WFDB record resampled to `fs`, shape `(n_chans, n)`; invalid samples are NaN."""
    dat_hint = (
        "Download the waveforms (data.download=true data.waveforms=true) or copy "
        f"{record}.dat from "
        "PhysioNet (https://physionet.org/content/apnea-ecg/) next to the header."
    )
    hea = root / f"{record}.hea"
    if not hea.is_file():
        raise CohortError(f"{hea}: the record header is missing. {dat_hint}")
    try:
        header = wfdb.rdheader(str(root / record))
    except Exception as err:
        raise CohortError(f"{hea}: cannot read the record header ({err}). Re-download it.") from err
    sig_len = 0 if header.sig_len is None else header.sig_len  # None: taken from the .dat
    check_rate(hea, header.fs, sig_len, "Re-download it.", fs_out=fs)
    try:
        rec = wfdb.rdrecord(str(root / record), channel_names=list(channels) if channels else None)
    except FileNotFoundError as err:
        raise CohortError(f"{root / record}: signal file missing ({err}). {dat_hint}") from err
    except Exception as err:
        raise CohortError(f"{root / record}: cannot read the record ({err}). {dat_hint}") from err
    if channels and len(rec.sig_name) != len(channels):
        raise CohortError(
            f"{root / record}.hea: wanted channels {list(channels)}, the record has "
            f"{rec.sig_name}. Fix data.channels."
        )
    if rec.p_signal is None or rec.p_signal.ndim != 2 or rec.p_signal.shape[1] == 0:
        raise CohortError(f"{hea}: the header lists no signals. Re-download it.")
    signal = resample(rec.p_signal.T.astype(np.float64), float(rec.fs), fs)
    return signal.astype(np.float32), list(rec.sig_name)


def read_apnea_ecg_record(
    root: Path,
    name: str,
    person: str,
    *,
    modality: str,
    fs: float,
    rri: dict | None = None,
    resp_record: str = "{name}r",
    channels: Sequence[str] | None = None,
) -> Recording:
    if modality == "rri":
        signal, names = rr_series(root, name, fs, **(rri or {})), ["rri"]
    elif modality == "ecg":
        signal, names = waveform(root, name, fs, channels or ["ECG"])
    elif modality == "resp":
        signal, names = waveform(root, resp_record.format(name=name), fs, channels)
    else:
        raise CohortError(f"unknown modality {modality!r}; choose rri, ecg or resp")
    segments, labels = minute_labels(root, name, fs)
    return Recording(
        name=name,
        person=person,
        signal=signal,
        fs=fs,
        channels=names,
        segments=segments,
        labels=labels,
    )
