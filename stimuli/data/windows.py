"""Cut labelled windows out of recordings; drop those running off the record or holding bad data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stimuli.data.recording import Recording


@dataclass
class WindowSet:
    x: np.ndarray  # float32 (n, n_chans, n_times)
    y: np.ndarray  # int64 (n,)
    segment_index: np.ndarray  # int64 (n,) index of the labelled segment within its recording
    dropped_edge: int
    dropped_invalid: int
    dropped_flat: int


def normalize_recording(signal: np.ndarray) -> np.ndarray:
    """Per-channel z-score over the whole night, ignoring NaN samples."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(signal, axis=1, keepdims=True)
        std = np.nanstd(signal, axis=1, keepdims=True)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    return ((signal - mean) / std).astype(np.float32)


def cut_windows(
    rec: Recording,
    context_before: int,
    context_after: int,
    flat_tol: float = 1e-4,
    signal: np.ndarray | None = None,
) -> WindowSet:
    """Windows `[start - before, stop + after)` for each labelled segment of `rec`.

    A window with any NaN sample is dropped as invalid; one where no channel varies (peak-to-peak
    below `flat_tol` times the channel's night-long standard deviation: a disconnected recorder)
    is dropped as flat. A single steady channel is kept: SpO2 can hold one value for minutes.
    `signal` replaces `rec.signal` (e.g. its normalized copy).
    """
    signal = rec.signal if signal is None else signal
    with np.errstate(invalid="ignore"):
        channel_std = np.nan_to_num(np.nanstd(signal, axis=1), nan=0.0)
    starts = rec.segments[:, 0] - context_before
    stops = rec.segments[:, 1] + context_after
    lengths = stops - starts
    if len(lengths) and np.any(lengths != lengths[0]):
        raise ValueError(f"{rec.name}: labelled segments differ in length; windows must be equal")
    inside = (starts >= 0) & (stops <= rec.n_samples)
    keep_idx = np.flatnonzero(inside)
    n_times = int(lengths[0]) if len(lengths) else 0
    if len(keep_idx) == 0:
        x = np.zeros((0, signal.shape[0], n_times), dtype=np.float32)
    else:
        offsets = np.arange(n_times)
        x = signal[:, starts[keep_idx, None] + offsets].transpose(1, 0, 2)
    invalid = ~np.isfinite(x).all(axis=(1, 2))
    ptp = np.ptp(np.nan_to_num(x), axis=2) if len(x) else np.zeros((0, signal.shape[0]))
    flat = ~invalid & (ptp <= flat_tol * channel_std[None, :]).all(axis=1)
    good = ~invalid & ~flat
    return WindowSet(
        x=np.ascontiguousarray(x[good], dtype=np.float32),
        y=rec.labels[keep_idx][good],
        segment_index=keep_idx[good],
        dropped_edge=int((~inside).sum()),
        dropped_invalid=int(invalid.sum()),
        dropped_flat=int(flat.sum()),
    )


def early_in_night(record: np.ndarray, segment: np.ndarray, holdout: float) -> np.ndarray:
    """True for the windows of each night (`record`) before its last `holdout` fraction, by
    window start (`segment`): what a person-ID model learns from; the rest scores it."""
    early = np.ones(len(record), dtype=bool)
    for r in np.unique(record):
        idx = np.flatnonzero(record == r)
        cut = np.quantile(segment[idx], 1 - holdout)
        early[idx] = segment[idx] <= cut
    return early
