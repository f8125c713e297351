"""Statistics shared by the attacks: seeded draws, attribution spread, weighted ROC AUC, JSON."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import entropy


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """A generator of its own for each use of the audit seed: draws with one seed but different
    sizes share their first elements, which made the leaky release a subset of the copy check's
    reference sample."""
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode())])


def attribution_stats(assigned: np.ndarray, n_persons: int, reference: np.ndarray) -> dict:
    """How the persons a release is attributed to are distributed.

    `reference` holds each person's number of training windows; `kl_to_training` is
    KL(attribution share || training share) in nats. A release that resembles nobody in particular
    spreads over the persons (normalized entropy near 1, top-1 share near 1/P).
    """
    counts = np.bincount(np.asarray(assigned, dtype=np.int64), minlength=n_persons)
    share = counts / max(int(counts.sum()), 1)
    ref = np.asarray(reference, dtype=np.float64) / np.sum(reference)
    top = int(share.argmax())
    return {
        "top1_share": float(share[top]),
        "top1_ratio": float(share[top] * n_persons),  # top-1 share in units of 1/P
        "top1_training_share": float(ref[top]),  # that person's share of the training windows
        "entropy": float(entropy(share) / np.log(n_persons)) if n_persons > 1 else 1.0,
        "kl_to_training": float(entropy(share, ref)),
        "counts": counts.tolist(),
    }


def weighted_aucs(scores: np.ndarray, is_member: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for many weightings of the persons at once (`weights: (draws, persons)`; person i
    counts `weights[b, i]` times in draw b, ties count half; NaN where a class is not drawn).
    With the pairwise member-beats-non-member matrix fixed, each draw's AUC is one bilinear form;
    calling scikit-learn (`roc_auc_score(sample_weight=...)`) once per draw took minutes for a few
    splits and students. Tests check that both agree."""
    beats = (scores[is_member, None] > scores[None, ~is_member]) + 0.5 * (
        scores[is_member, None] == scores[None, ~is_member]
    )
    w_m, w_n = weights[:, is_member], weights[:, ~is_member]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("bi,ij,bj->b", w_m, beats, w_n) / (w_m.sum(1) * w_n.sum(1))


def plain(obj: Any, digits: int = 5) -> Any:
    """`obj` with numpy values turned into Python ones and floats rounded, for JSON."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, digits) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist(), digits)
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return round(value, digits) if np.isfinite(value) else None
    return obj
