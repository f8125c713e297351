"""Hand-crafted per-window features for the classical (scikit-learn) students.

`window_features(x, fs)` maps windows `x: (N, n_chans, n_times)` sampled at `fs` Hz to a float64
matrix `(N, n_chans * F)`. The columns are channel-major: all features of channel 0, then of
channel 1, and so on; `feature_names(n_chans, fs)` gives their names (`ch{c}_{feature}`).

Per channel, in this order (11 + number of bands = 15 features for any ``fs >= 0.8`` Hz):

=================  ===================================================================
``mean``           mean of the window
``std``            standard deviation (population, ``ddof=0``)
``min``/``max``    extremes
``p05``-``p95``    percentiles 5, 25, 50, 75 and 95: ``p05 p25 p50 p75 p95`` (linear)
``mean_abs_diff``  mean of ``|x[t+1] - x[t]|`` (per sample, not per second)
``zcr``            zero crossings of the de-meaned window per second: the number of
                   consecutive pairs whose sign differs (zeros count as positive) divided
                   by the window duration ``(n_times - 1) / fs``
``logpow_<band>``  ``log(P + 1e-12)`` of the power ``P`` in a frequency band, for each band of
                   `BANDS` whose upper edge is at most the Nyquist frequency ``fs / 2``
=================  ===================================================================

`BANDS` are the classic HRV bands plus the band of the cyclic variation of heart rate that
obstructive apnea produces (cycles of 20-100 s):

=========  ================  ========================================================
``vlf``    0.003-0.04 Hz     very low frequency
``cvhr``   0.01-0.05 Hz      cyclic variation of heart rate (overlaps ``vlf``/``lf``)
``lf``     0.04-0.15 Hz      low frequency
``hf``     0.15-0.4 Hz       high frequency (respiratory sinus arrhythmia)
=========  ================  ========================================================

All four are kept for every ``fs >= 0.8`` Hz (RR series at 4 Hz, respiration at 1 Hz), so the
feature width depends only on ``(n_chans, fs)``, never on the data.

The spectrum is `scipy.signal.welch` with a Hann window, ``nperseg = n_times // 2`` (the whole
window when ``n_times < 32``), 50 % overlap and constant detrending, giving a density in
units^2/Hz. A band's power is the trapezoidal integral of that density, linearly interpolated
on 64 evenly spaced points from the band's lower to its upper edge. Interpolating keeps a band
narrower than the frequency resolution ``fs / nperseg`` (e.g. ``vlf`` in a 1-minute window)
finite and smooth instead of empty; it then reflects the nearest bins, not true resolution.

Everything is computed in float64 and is deterministic. Windows must be finite.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

BANDS: tuple[tuple[str, float, float], ...] = (
    ("vlf", 0.003, 0.04),
    ("cvhr", 0.01, 0.05),
    ("lf", 0.04, 0.15),
    ("hf", 0.15, 0.4),
)
PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)
_BAND_GRID = 64
_LOG_FLOOR = 1e-12


def active_bands(fs: float) -> list[tuple[str, float, float]]:
    """The bands of `BANDS` that fit below the Nyquist frequency of `fs`."""
    if not fs > 0:
        raise ValueError(f"fs must be positive, got {fs}")
    return [band for band in BANDS if band[2] <= fs / 2]


def _per_channel_names(fs: float) -> list[str]:
    names = ["mean", "std", "min", "max"]
    names += [f"p{q:02d}" for q in PERCENTILES]
    names += ["mean_abs_diff", "zcr"]
    names += [f"logpow_{name}" for name, _, _ in active_bands(fs)]
    return names


def feature_names(n_chans: int, fs: float) -> list[str]:
    return [f"ch{c}_{name}" for c in range(n_chans) for name in _per_channel_names(fs)]


def _band_powers(x: np.ndarray, fs: float, bands: list[tuple[str, float, float]]) -> np.ndarray:
    n_times = x.shape[-1]
    nperseg = n_times // 2 if n_times >= 32 else n_times
    freqs, psd = welch(x, fs=fs, window="hann", nperseg=nperseg, detrend="constant", axis=-1)
    out = np.empty((*x.shape[:-1], len(bands)))
    for i, (_, lo, hi) in enumerate(bands):
        grid = np.linspace(lo, hi, _BAND_GRID)
        # Linear interpolation along the last axis, vectorised over windows and channels.
        right = np.clip(np.searchsorted(freqs, grid, side="right"), 1, len(freqs) - 1)
        left = right - 1
        frac = np.clip((grid - freqs[left]) / (freqs[right] - freqs[left]), 0.0, 1.0)
        dens = psd[..., left] * (1.0 - frac) + psd[..., right] * frac
        out[..., i] = np.trapezoid(dens, grid, axis=-1)
    return np.log(out + _LOG_FLOOR)


CHUNK = 1024  # windows whose features are computed together: memory stays flat in N


def window_features(x: np.ndarray, fs: float) -> np.ndarray:
    """`(N, n_chans * F)` features of windows `x` `(N, n_chans, n_times)` (an array or anything
    sliced by rows, e.g. a `WindowView`), computed `CHUNK` windows at a time: the Welch spectra
    and float64 copies of a whole split would otherwise take several times its size."""
    if isinstance(x, np.ndarray) and (x.ndim != 3 or len(x) <= CHUNK):
        return _chunk_features(x, fs)
    chunks = range(0, max(len(x), 1), CHUNK)  # a view is read even when short
    return np.concatenate([_chunk_features(x[i : i + CHUNK], fs) for i in chunks])


def _chunk_features(x: np.ndarray, fs: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"windows must be 3-D (N, n_chans, n_times), got shape {x.shape}")
    n, _, n_times = x.shape
    if n_times < 2:
        raise ValueError(f"windows need at least 2 samples, got n_times={n_times}")
    if not np.all(np.isfinite(x)):
        raise ValueError("windows contain NaN or infinite values; clean or drop them first")
    bands = active_bands(fs)

    centred = x - x.mean(axis=-1, keepdims=True)
    signs = centred >= 0
    crossings = np.count_nonzero(signs[..., 1:] != signs[..., :-1], axis=-1)
    parts = [
        x.mean(axis=-1)[..., None],
        x.std(axis=-1)[..., None],
        x.min(axis=-1)[..., None],
        x.max(axis=-1)[..., None],
        np.moveaxis(np.percentile(x, PERCENTILES, axis=-1), 0, -1),
        np.abs(np.diff(x, axis=-1)).mean(axis=-1)[..., None],
        (crossings / ((n_times - 1) / fs))[..., None],
    ]
    if bands:
        parts.append(_band_powers(x, fs, bands))
    feats = np.concatenate(parts, axis=-1)  # (N, n_chans, F)
    return feats.reshape(n, -1)
