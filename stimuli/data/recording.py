"""The one in-memory form every cohort reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class CohortError(ValueError):
    """Bad input in a cohort: the message names the file, what is wrong and what to do."""


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
