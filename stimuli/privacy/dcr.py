"""Criterion 4: distance to closest record, members against a control of non-members.

`share`: the share of released windows whose nearest member is nearer than their nearest
non-member. Both sides are person-balanced (as many persons drawn from the members as from the
non-members, as many windows of each person), and drawing the persons again and again (a person
bootstrap) gives the interval.

Distances are calibrated per person: the log distances of all released windows to a person are
standardized (minus their median, over their median absolute deviation). In raw distances the
person whose windows have the smallest norm is "nearest" to white noise, and to almost any
release, whatever it learned: the white-noise placebo scored a share of 0.86 on the tiny
closed-resp run, where that person was a member (0.44 calibrated). Calibrated, a release that
carries nothing of the members scores 0.5, while a copy of a member's window is still nearest
that member.

`near_copies` counts released windows nearer a member window than the `percentile`th
percentile of real-to-real nearest distances (the release's copy check threshold,
`privacy.copy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import pairwise_distances

from stimuli.data.datasets import RowView
from stimuli.privacy.candidates import Candidates
from stimuli.privacy.neighbours import READ_ROWS, flat, knn, nearest_other
from stimuli.privacy.stats import rng_for


def per_person_nearest(
    cand: Candidates, x: np.ndarray, take: np.ndarray, chunk: int = READ_ROWS
) -> np.ndarray:
    """(len(x), n_persons): each released window's distance to the nearest of the windows
    `take` (indices into `cand`) of each person, read `chunk` windows at a time."""
    order = take[np.argsort(cand.slot[take], kind="stable")]
    query = flat(x)
    out = np.full((len(x), cand.n_persons), np.inf)
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        slots = cand.slot[rows]
        starts = np.flatnonzero(np.r_[True, slots[1:] != slots[:-1]])
        block = pairwise_distances(query, flat(cand.x[rows]))
        cols = slots[starts]  # a person cut by a chunk's edge keeps the smaller of its minima
        out[:, cols] = np.minimum(out[:, cols], np.minimum.reduceat(block, starts, axis=1))
    return out


def per_person_standardized(d: np.ndarray) -> np.ndarray:
    """Log distances standardized per person (column): minus the median, over the median
    absolute deviation; exact copies are floored a thousand times below the median distance."""
    positive = d[d > 0]
    log_d = np.log(d + 1e-3 * (np.median(positive) if len(positive) else 1.0))
    centre = np.median(log_d, axis=0)
    spread = np.median(np.abs(log_d - centre), axis=0)
    return (log_d - centre) / np.where(spread > 0, spread, 1.0)


def balanced_windows(cand: Candidates, per_person: int | None, seed: int) -> np.ndarray:
    """Indices of the same number of windows of every person (the fewest any person has, or
    `per_person` when smaller)."""
    counts = np.bincount(cand.slot, minlength=cand.n_persons)
    n = int(counts.min()) if per_person is None else min(int(per_person), int(counts.min()))
    rng = rng_for(seed, "dcr windows")
    idx = [rng.choice(np.flatnonzero(cand.slot == s), n, replace=False) for s in range(len(counts))]
    return np.sort(np.concatenate(idx))


def copy_threshold(cand: Candidates, cfg: Mapping[str, Any], seed: int) -> float:
    """The `percentile`th percentile of member windows' distances to their nearest other one."""
    members = np.flatnonzero(cand.member)
    rng = rng_for(seed, "dcr threshold")
    n = min(len(members), int(cfg.get("max_windows", 3000)))
    sample = rng.choice(len(members), n, replace=False)
    nearest = nearest_other(RowView(cand.x, members), sample)
    return float(np.percentile(nearest, float(cfg["percentile"])))


def distance_to_closest_record(
    cand: Candidates,
    x: np.ndarray,
    *,
    threshold: float,
    windows_per_person: int | None,
    n_bootstrap: int,
    ci: float,
    seed: int,
) -> dict:
    """`share` with its person-bootstrap interval, `near_copies` and the distances behind them
    (`log_ratio`: log nearest-member over nearest-non-member raw distance per released window,
    for the histogram)."""
    x = np.asarray(x, dtype=np.float32)
    raw = per_person_nearest(cand, x, balanced_windows(cand, windows_per_person, seed))
    d = per_person_standardized(raw)
    members = np.flatnonzero(cand.is_member)
    others = np.flatnonzero(~cand.is_member)
    m = min(len(members), len(others))
    rng = rng_for(seed, "dcr persons")

    def share(mem: np.ndarray, non: np.ndarray) -> tuple[float, np.ndarray]:
        d_in, d_out = d[:, mem].min(1), d[:, non].min(1)
        return float((d_in < d_out).mean() + 0.5 * (d_in == d_out).mean()), d_in / d_out

    def drawn(replace: bool) -> float:
        return share(rng.choice(members, m, replace=replace), rng.choice(others, m, replace))[0]

    # the point: balanced subsets of distinct persons; the interval: persons resampled
    point = float(np.mean([drawn(False) for _ in range(max(n_bootstrap // 5, 1))]))
    draws = [drawn(True) for _ in range(n_bootstrap)]
    near_in, near_out = raw[:, members].min(1), raw[:, others].min(1)
    with np.errstate(divide="ignore", invalid="ignore"):  # 1 where both are exact copies
        ratio = np.where((near_in == 0) & (near_out == 0), 1.0, near_in / near_out)
    low, high = np.quantile(draws, [(1 - ci) / 2, (1 + ci) / 2])
    nearest_member = knn(RowView(cand.x, np.flatnonzero(cand.member)), x, 1)[0][:, 0]
    return {
        "share": point,
        "ci_low": float(low),
        "ci_high": float(high),
        "covers_half": bool(low <= 0.5 <= high),
        "near_copies": int((nearest_member < threshold).sum()),
        "threshold": threshold,
        "log_ratio": np.log(np.maximum(ratio, 1e-12)).tolist(),
    }
