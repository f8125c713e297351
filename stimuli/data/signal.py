"""Resampling shared by the WFDB and EDF readers."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling of `(n_chans, n)` along time; NaN samples stay invalid.

    NaNs are filled with the channel mean for filtering, and every output sample whose source
    position held a NaN is set back to NaN, so invalid stretches are dropped later, not smeared.
    """
    if np.isclose(fs_in, fs_out):
        return signal
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    nan = ~np.isfinite(signal)
    filled = (
        np.where(nan, np.nanmean(signal, axis=1, keepdims=True), signal) if nan.any() else signal
    )
    out = resample_poly(filled, ratio.numerator, ratio.denominator, axis=-1)
    if nan.any():
        scale = float(ratio)
        for c in range(signal.shape[0]):
            idx = np.minimum((np.flatnonzero(nan[c]) * scale).astype(int), out.shape[1] - 1)
            out[c, idx] = np.nan
    return out
