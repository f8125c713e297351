"""Statistics shared by the attacks: attribution distributions, bootstrap ROC AUC, JSON rounding."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import bootstrap, entropy, mannwhitneyu
from sklearn.metrics import roc_auc_score


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


def _auc(members: np.ndarray, others: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC AUC from the Mann-Whitney U statistic (ties count half), vectorized over resamples."""
    u = mannwhitneyu(members, others, axis=axis).statistic
    return u / (members.shape[axis] * others.shape[axis])


def bootstrap_auc(
    scores: np.ndarray, is_member: np.ndarray, n_bootstrap: int, ci: float, seed: int
) -> dict:
    """ROC AUC of `scores` (higher = member) with a percentile bootstrap interval.

    Persons are resampled with replacement within members and within non-members, so every
    resample keeps both classes. Persons without a score (NaN) are left out.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    ok = np.isfinite(scores)
    members, others = scores[ok & is_member], scores[ok & ~is_member]
    out: dict[str, Any] = {"n_members": len(members), "n_non_members": len(others)}
    if len(members) == 0 or len(others) == 0:
        return {**out, "auc": None, "ci_low": None, "ci_high": None, "covers_chance": None}
    auc = float(roc_auc_score(is_member[ok], scores[ok]))
    interval = bootstrap(
        (members, others),
        _auc,
        n_resamples=n_bootstrap,
        confidence_level=ci,
        method="percentile",
        vectorized=True,
        random_state=rng_for(seed, "bootstrap"),
    ).confidence_interval
    low, high = float(interval.low), float(interval.high)
    return {
        **out,
        "auc": auc,
        "ci_low": low,
        "ci_high": high,
        "covers_chance": bool(low <= 0.5 <= high),
    }


def _weighted_aucs(scores: np.ndarray, is_member: np.ndarray, weights: np.ndarray) -> np.ndarray:
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


def pooled_auc(
    splits: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    n_bootstrap: int,
    ci: float,
    seed: int,
) -> dict:
    """Membership AUC over several person splits of one cohort: the mean of the splits' AUCs,
    with a bootstrap interval that resamples *persons*, the same draw in every split.

    Each split is `(person, is_member, score)` for the persons it scored (global person ids).
    A person is a member in some splits and not in others, so the splits are not independent;
    drawing persons once per resample keeps that dependence in the interval.
    """
    if not splits:
        raise ValueError("pooled_auc needs at least one split")
    prepared = [
        (np.asarray(p), np.asarray(m, dtype=bool), np.asarray(s, dtype=np.float64))
        for p, m, s in splits
    ]
    everyone = np.unique(np.concatenate([p for p, _, _ in prepared]))

    aucs = [float(roc_auc_score(m[np.isfinite(s)], s[np.isfinite(s)])) for _, m, s in prepared]
    rng = rng_for(seed, "pooled bootstrap")
    multiplicity = np.stack(
        [
            np.bincount(rng.integers(0, len(everyone), len(everyone)), minlength=len(everyone))
            for _ in range(n_bootstrap)
        ]
    ).astype(np.float64)
    per_split = []
    for p, m, s in prepared:
        ok = np.isfinite(s)
        weights = multiplicity[:, np.searchsorted(everyone, p[ok])]
        per_split.append(_weighted_aucs(s[ok], m[ok], weights))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a draw no split can score (all NaN)
        draws = np.nanmean(np.stack(per_split), axis=0)
    draws = draws[np.isfinite(draws)]
    low, high = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2])
    return {
        "auc": float(np.mean(aucs)),
        "split_aucs": [float(a) for a in aucs],
        "n_splits": len(prepared),
        "n_persons": len(everyone),
        "ci_low": float(low),
        "ci_high": float(high),
        "covers_chance": bool(low <= 0.5 <= high),
    }


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


def config_dict(cfg: Any) -> dict:
    """A DictConfig (resolved) or mapping as a plain dict."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)
