"""Attacks 1 and 2: to which training person does each stimulus look like it belongs?

Both report the attribution distribution over the training persons (top-1 share, normalized
entropy, KL to the persons' shares of the training windows) and a per-stimulus confidence, since
a release of real windows spread over everyone has a high-entropy distribution too: only the
confidence (auditor posterior, neighbour agreement, nearest distance) sets it apart. The control
`leaky_balanced` shows it: as many real windows of each training person, the leakiest release
there is, and the flattest attribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from stimuli.data.cohort import CohortDataModule
from stimuli.privacy.auditor import posteriors, train_person_model
from stimuli.privacy.neighbours import knn
from stimuli.privacy.real import RealWindows
from stimuli.privacy.stats import attribution_stats, config_dict, plain, rng_for


def _sample(n: int, size: int | None, seed: int, purpose: str) -> np.ndarray:
    if size is None or n <= size:
        return np.arange(n)
    return np.sort(rng_for(seed, purpose).choice(n, size, replace=False))


def _releases(
    stimuli_x: np.ndarray, leaky_x: np.ndarray | None, leaky_balanced_x: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The release and the leaky controls that are present, by the name they are reported under."""
    named = {"release": stimuli_x, "leaky": leaky_x, "leaky_balanced": leaky_balanced_x}
    return {name: x for name, x in named.items() if x is not None}


def _split_counts(stats: dict) -> tuple[dict, list[int]]:
    counts = stats.pop("counts")
    return stats, counts


def non_member_reference(
    assigned: np.ndarray, person: np.ndarray, n_persons: int, train_counts: np.ndarray
) -> dict:
    """The attribution statistics of real windows of persons outside the training set: what a
    release that is anonymous by construction scores. Pooled over those persons, and the range
    (min, median, max) over single persons' windows."""
    pooled, _ = _split_counts(attribution_stats(assigned, n_persons, train_counts))
    singles = [
        attribution_stats(assigned[person == q], n_persons, train_counts) for q in np.unique(person)
    ]

    def spread(key: str) -> list[float]:
        values = [s[key] for s in singles]
        return [float(np.min(values)), float(np.median(values)), float(np.max(values))]

    return {
        **pooled,
        "n_persons": len(singles),
        "single_non_member_top1_ratio": spread("top1_ratio"),
        "single_non_member_entropy": spread("entropy"),
    }


def train_auditor(
    real: RealWindows, cfg: Mapping[str, Any], seed: int, progress: bool = False
) -> torch.nn.Module:
    """The auditor's person-ID model on the early part of each training person's nights."""
    a = cfg["auditor"]
    x, label = real.x_train[real.fit], real.label[real.fit]
    return train_person_model(x, label, real.n_persons, a, seed + int(a["seed_offset"]), progress)


def attribution_by_classifier(
    dm: CohortDataModule,
    stimuli_x: np.ndarray,
    cfg: Mapping[str, Any],
    seed: int,
    *,
    auditor: torch.nn.Module | None = None,
    real: RealWindows | None = None,
    leaky_x: np.ndarray | None = None,
    leaky_balanced_x: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[dict, dict]:
    cfg = config_dict(cfg)
    real = real or RealWindows.for_audit(dm, cfg)
    auditor = auditor if auditor is not None else train_auditor(real, cfg, seed, progress)
    n_p = real.n_persons
    held = posteriors(auditor, real.x_train[real.held])
    outs = _sample(len(real.x_out), cfg["max_queries"], seed, "non-members")
    outsiders = posteriors(auditor, real.x_out[outs])
    truth = real.label[real.held]
    hits = held.argmax(1) == truth
    control = {
        "top1_acc": float(hits.mean()),
        "chance": 1 / n_p,
        "n_persons": n_p,
        "n_held_out": len(truth),
        "confidence_held_out": float(held.max(1).mean()),  # mean max posterior, late slices
        "confidence_non_members": float(outsiders.max(1).mean()),  # persons it never saw
    }
    reference = non_member_reference(
        outsiders.argmax(1), real.person_out[outs], n_p, real.train_counts
    )
    summary: dict[str, Any] = {"control": control, "non_members": reference}
    details: dict[str, Any] = {
        "training_counts": real.train_counts.tolist(),
        "control_acc_per_person": [float(hits[truth == i].mean()) for i in range(n_p)],
    }
    for name, x in _releases(stimuli_x, leaky_x, leaky_balanced_x).items():
        p = posteriors(auditor, x)
        stats, counts = _split_counts(attribution_stats(p.argmax(1), n_p, real.train_counts))
        summary[name] = {**stats, "confidence": float(p.max(1).mean())}
        details[f"{name}_counts"] = counts
    return plain(summary), plain(details)


def _neighbour_attack(
    ref: np.ndarray, ref_label: np.ndarray, query: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Each query's nearest reference person, the share of its `k` nearest neighbours from that
    person (agreement), and its nearest distance."""
    dist, idx = knn(ref, query, k)
    labels = ref_label[idx]
    return {
        "person": labels[:, 0],
        "agreement": (labels == labels[:, :1]).mean(1),
        "distance": dist[:, 0],
    }


def attribution_by_neighbour(
    dm: CohortDataModule,
    teacher: torch.nn.Module,
    stimuli_x: np.ndarray,
    cfg: Mapping[str, Any],
    seed: int,
    *,
    real: RealWindows | None = None,
    leaky_x: np.ndarray | None = None,
    leaky_balanced_x: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """The person of each stimulus's nearest real training window, in raw space and in the
    teacher's standardized embedding space. Control: the same attack naming the persons of real
    late-slice windows from the early slices of the nights."""
    cfg = config_dict(cfg)
    real = real or RealWindows.for_audit(dm, cfg)
    k, n_p = int(cfg["k"]), real.n_persons
    space, train_emb, out_emb = real.embedded(teacher)
    held = np.flatnonzero(real.held)
    held = held[_sample(len(held), cfg["max_queries"], seed, "held")]
    outs = _sample(len(real.x_out), cfg["max_queries"], seed, "non-members")
    views = {
        "raw": (real.x_train, real.x_out, lambda x: x),
        "embedding": (train_emb, out_emb, space),
    }
    summary: dict[str, Any] = {}
    details: dict[str, Any] = {"training_counts": real.train_counts.tolist()}
    for view, (train, out, to_view) in views.items():
        ctl = _neighbour_attack(train[real.fit], real.label[real.fit], train[held], k)
        base = _neighbour_attack(train, real.label, out[outs], k)
        block: dict[str, Any] = {
            "control": {
                "top1_acc": float((ctl["person"] == real.label[held]).mean()),
                "chance": 1 / n_p,
                "agreement_held_out": float(ctl["agreement"].mean()),
                "agreement_non_members": float(base["agreement"].mean()),
                "distance_held_out": float(np.median(ctl["distance"])),
                "distance_non_members": float(np.median(base["distance"])),
            },
            "non_members": non_member_reference(
                base["person"], real.person_out[outs], n_p, real.train_counts
            ),
        }
        for name, x in _releases(stimuli_x, leaky_x, leaky_balanced_x).items():
            res = _neighbour_attack(train, real.label, to_view(x), k)
            stats, counts = _split_counts(attribution_stats(res["person"], n_p, real.train_counts))
            block[name] = {
                **stats,
                "agreement": float(res["agreement"].mean()),
                "distance": float(np.median(res["distance"])),  # median nearest distance
            }
            details[f"{view}_{name}_counts"] = counts
        summary[view] = block
    return plain(summary), plain(details)
