"""Closed cohorts stored as EDF / EDF+ files, with NSRR XML sidecars or embedded annotations.

Only signals, sampling rates and channel labels are taken from the file: the header's
patient, recording and start-date fields identify people and never reach a `Recording`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from stimuli.data.annotations import (
    clip_events,
    events_from_mne,
    label_windows,
    normalize_kind,
    read_nsrr_xml,
)
from stimuli.data.recording import MAX_RECORDING_S, CohortError, Recording, check_rate
from stimuli.data.signal import resample

_REFETCH = "re-export it from the recording software or download it again"


def _edf_layout(path: Path) -> bool:
    """Check the fixed EDF header against the file size; return whether the file is EDF+.

    mne reads a truncated file without complaint (it returns fewer samples), so the size the
    header declares (header bytes + records x record bytes) is compared with the file's size.
    Only the technical fields are parsed; identifying fields are skipped.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(256)
            if len(head) < 256 or head[:8] != b"0       ":
                raise CohortError(
                    f"{path}: not an EDF/EDF+ file (bad or missing 256-byte header); {_REFETCH}."
                )
            n_sig = int(head[252:256].decode("ascii").strip())
            header_bytes = int(head[184:192].decode("ascii").strip())
            n_records = int(head[236:244].decode("ascii").strip())
            record_s = float(head[244:252].decode("ascii").strip())
            reserved = head[192:236].decode("ascii", "replace").strip()
            # labels 16, transducer 80, units 8, phys min/max 8+8, dig min/max 8+8, prefilter 80
            fh.seek(256 + n_sig * 216)
            spr_raw = fh.read(8 * n_sig)
            spr = [int(spr_raw[8 * i : 8 * i + 8].decode("ascii").strip()) for i in range(n_sig)]
    except CohortError:
        raise
    except OSError as err:
        raise CohortError(f"{path}: cannot read the file ({err}).") from None
    except (ValueError, UnicodeDecodeError):
        raise CohortError(
            f"{path}: not an EDF/EDF+ file (unreadable header fields); {_REFETCH}."
        ) from None
    if n_sig <= 0 or header_bytes != 256 * (n_sig + 1) or min(spr, default=0) <= 0:
        raise CohortError(f"{path}: inconsistent EDF header (corrupt file); {_REFETCH}.")
    if not math.isfinite(record_s) or record_s < 0:
        raise CohortError(
            f"{path}: inconsistent EDF header: the data record duration is {record_s:g} s "
            f"(corrupt file); {_REFETCH}."
        )
    # EDF+ allows 0 s records for annotation-only files; mne then takes 1 s, and so does this check
    total_s = max(n_records, 0) * (record_s or 1.0)
    if total_s > MAX_RECORDING_S:
        raise CohortError(
            f"{path}: inconsistent EDF header: {n_records} data records of {record_s:g} s make "
            f"{total_s / 86400:.3g} days (corrupt file?); {_REFETCH}."
        )
    record_bytes = 2 * sum(spr)
    data_bytes = size - header_bytes
    if n_records >= 0:
        expected = n_records * record_bytes
        if data_bytes < expected:
            raise CohortError(
                f"{path}: truncated EDF file: the header declares {n_records} data records "
                f"({header_bytes + expected} bytes) but the file has {size} bytes; {_REFETCH}."
            )
    elif data_bytes <= 0 or data_bytes % record_bytes:
        raise CohortError(
            f"{path}: truncated EDF file (record count unknown and {data_bytes} data bytes are not "
            f"a whole number of {record_bytes}-byte records); {_REFETCH}."
        )
    return reserved.startswith("EDF+")


def person_from_name(stem: str, regex: str | None) -> str:
    """Person id from a file stem: the first group of `regex` (whole match if it has none)."""
    if regex is None:
        return stem
    m = re.search(regex, stem)
    if m is None:
        raise CohortError(
            f"{stem}: file name does not match the person regex {regex!r}; fix the regex in the "
            "data config or rename the file."
        )
    return m.group(1) if m.re.groups else m.group(0)


def _pick_channels(
    path: Path, names: list[str], channels: Mapping[str, Sequence[str]]
) -> list[str]:
    lower = {}
    for n in names:
        lower.setdefault(n.strip().lower(), n)
    picks = []
    for out, aliases in channels.items():
        aliases = [aliases] if isinstance(aliases, str) else list(aliases)
        hit = next((lower[a.strip().lower()] for a in aliases if a.strip().lower() in lower), None)
        if hit is None:
            raise CohortError(
                f"{path}: no channel for {out!r} (aliases tried: {aliases}); the file has "
                f"{names}; add the file's name to the aliases in the data config's `channels` map."
            )
        picks.append(hit)
    return picks


def read_edf_recording(
    path: str | os.PathLike,
    *,
    channels: Mapping[str, Sequence[str]],
    fs: float,
    window_s: float,
    stride_s: float,
    event_kinds: Sequence[str],
    min_event_s: float,
    person: str,
    sidecar_pattern: str = "{name}-nsrr.xml",
) -> Recording:
    """One EDF/EDF+ night as a `Recording` of labelled fixed windows.

    Labels come from the sidecar `sidecar_pattern.format(name=stem)` beside the file when it
    exists (NSRR XML), else from the EDF+ embedded annotations. A window is 1 when events of
    `event_kinds` cover at least `min_event_s` seconds of it.
    """
    import mne

    path = Path(path)
    if not path.is_file():
        raise CohortError(f"{path}: file not found; check the data config's path.")
    is_edf_plus = _edf_layout(path)
    try:
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    except Exception as err:
        raise CohortError(f"{path}: cannot read as EDF/EDF+ ({err}); {_REFETCH}.") from None

    picks = _pick_channels(path, list(raw.ch_names), channels)
    fs_in = float(raw.info["sfreq"])
    # the rate is samples per record / record duration: a corrupt header can make it absurd
    check_rate(path, fs_in, raw.n_times, f"Otherwise {_REFETCH}.", fs_out=fs)
    duration_s = raw.n_times / fs_in
    data = raw.get_data(picks=picks)
    signal = resample(data, fs_in, float(fs)).astype(np.float32)

    win, stride = round(window_s * fs), round(stride_s * fs)
    if win <= 0 or stride <= 0 or not np.isclose(win, window_s * fs):
        raise ValueError(
            f"window_s={window_s}, stride_s={stride_s} at fs={fs} are not whole samples"
        )
    n = min(signal.shape[1], int(np.floor(duration_s * fs + 1e-9)))
    starts = np.arange(0, n - win + 1, stride, dtype=np.int64)
    segments = np.column_stack([starts, starts + win])

    sidecar = path.with_name(sidecar_pattern.format(name=path.stem))
    if sidecar.is_file():
        events, source, ann_file = read_nsrr_xml(sidecar), "nsrr_xml", sidecar
    elif is_edf_plus or len(raw.annotations):
        events, source, ann_file = events_from_mne(raw.annotations), "edf+", path
    else:
        raise CohortError(
            f"{path}: labels are missing: the file is plain EDF (no EDF+ annotations) and there is "
            f"no sidecar {sidecar}; put the scored events there (NSRR XML) or export EDF+."
        )
    events = clip_events(events, duration_s, str(ann_file))
    labels = label_windows(events, starts / float(fs), win / float(fs), event_kinds, min_event_s)
    wanted = {normalize_kind(k) for k in event_kinds}
    return Recording(
        name=path.stem,
        person=person,
        signal=signal,
        fs=float(fs),
        channels=list(channels),
        segments=segments,
        labels=labels,
        info={
            "duration_s": duration_s,
            "annotation_source": source,
            "n_events": sum(e.kind in wanted for e in events),
        },
    )
