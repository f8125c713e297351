"""The one in-memory form every cohort reader produces."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class CohortError(ValueError):
    """Bad input in a cohort: the message names the file, what is wrong and what to do."""


# a header claiming a longer record is corrupt, not a recording (and would stall the readers)
MAX_RECORDING_S = 31 * 24 * 3600.0
# resampling by more than this factor either way is refused (`signal.resample`'s ratio is inexact)
MAX_RESAMPLE_RATIO = 1000.0


def check_rate(path, fs_in: float, n_samples: float, fix: str, fs_out: float | None = None) -> None:
    """Raise a `CohortError` naming `path` unless a header's sampling rate and length are usable.

    `fs_in` must be a positive finite rate, `n_samples / fs_in` at most `MAX_RECORDING_S`, and,
    when `fs_out` is given, the resampling ratio within `MAX_RESAMPLE_RATIO` either way.
    `fix` says what to do (e.g. "Re-download it.").
    """
    try:
        fs_in, n_samples = float(fs_in), float(n_samples)
    except (TypeError, ValueError):
        raise CohortError(
            f"{path}: the header gives no usable sampling rate or length (fs={fs_in!r}, "
            f"{n_samples!r} samples). {fix}"
        ) from None
    if not (math.isfinite(fs_in) and fs_in > 0 and math.isfinite(n_samples) and n_samples >= 0):
        raise CohortError(
            f"{path}: the header gives an unusable sampling rate or length (fs={fs_in:g} Hz, "
            f"{n_samples:g} samples). {fix}"
        )
    if n_samples / fs_in > MAX_RECORDING_S:
        raise CohortError(
            f"{path}: the header declares {n_samples:g} samples at {fs_in:g} Hz, "
            f"{n_samples / fs_in / 86400:.3g} days (corrupt header?). {fix}"
        )
    if fs_out is not None and not (
        1 / MAX_RESAMPLE_RATIO <= float(fs_out) / fs_in <= MAX_RESAMPLE_RATIO
    ):
        raise CohortError(
            f"{path}: the sampling rate {fs_in:g} Hz cannot be resampled to data.fs="
            f"{float(fs_out):g} Hz (at most {MAX_RESAMPLE_RATIO:g} times up or down); check the "
            f"header's sampling rate, or choose another data.fs. {fix}"
        )


@dataclass
class Recording:
    """One night of one person, resampled to a common rate.

    `segments` holds the labelled spans as `[start, stop)` sample indices into `signal`;
    windows are cut from them (plus any context) by `stimuli.data.windows`.
    """

    name: str
    person: str
    signal: np.ndarray  # float32 (n_chans, n_samples); NaN marks invalid samples
    fs: float
    channels: list[str]
    segments: np.ndarray  # int64 (n_segments, 2)
    labels: np.ndarray  # int64 (n_segments,)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float32)
        if self.signal.ndim != 2:
            raise ValueError(
                f"{self.name}: signal must be (n_chans, n_samples), got {self.signal.shape}"
            )
        self.segments = np.asarray(self.segments, dtype=np.int64).reshape(-1, 2)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.segments) != len(self.labels):
            raise ValueError(
                f"{self.name}: {len(self.segments)} segments but {len(self.labels)} labels"
            )
        if len(self.channels) != self.signal.shape[0]:
            raise ValueError(
                f"{self.name}: {len(self.channels)} channel names for {self.signal.shape[0]} rows"
            )

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[1])
