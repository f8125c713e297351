"""The anonymity criteria on one person split: every attack on the release and on the releases
of known truth, members against non-members.

Releases judged together (`known_truth_releases`):
- `release`: what the owner would publish;
- `leaky`: as many real training windows, drawn as the training set is, with their labels; and
  `leaky_balanced`: as many windows of each training person. A criterion that these pass has no
  power and proves nothing;
- `placebo`: white noise of the release's shape with random labels, which carries nothing of the
  cohort. A criterion that it fails is broken.

One split holds few persons (14 members, 10 non-members in the open cohort), so its numbers are
labelled "one split, not a verdict"; `stimuli.privacy.verdict` pools K splits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from stimuli.data.datasets import RowView
from stimuli.privacy.anonymeter_risks import anonymeter_risks
from stimuli.privacy.candidates import Candidates
from stimuli.privacy.dcr import copy_threshold, distance_to_closest_record
from stimuli.privacy.person_scores import (
    ATTRIBUTION_SCORES,
    FeatureSpace,
    fit_attack_students,
    person_scores,
)
from stimuli.privacy.roc import family_roc
from stimuli.privacy.stats import attribution_stats, plain, rng_for
from stimuli.students.base import Student
from stimuli.students.features import window_features

ONE_SPLIT = "one split, not a verdict"


def known_truth_releases(
    cand: Candidates, release_x: np.ndarray, release_y: np.ndarray, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`release`, `leaky`, `leaky_balanced` and `placebo` as (windows, labels)."""
    n = len(release_x)
    members = np.flatnonzero(cand.member)
    rng = rng_for(seed, "leaky")
    leaky = np.sort(rng.choice(members, min(n, len(members)), replace=False))
    slots = cand.slot[members]
    present = np.unique(slots)
    per = max(1, min(n // len(present), int(np.bincount(slots)[present].min())))
    rng = rng_for(seed, "leaky-balanced")
    balanced = np.sort(
        np.concatenate([rng.choice(members[slots == s], per, replace=False) for s in present])
    )
    rng = rng_for(seed, "placebo")
    noise = rng.standard_normal((n, *release_x.shape[1:])).astype(np.float32)
    labels = rng.permutation(np.arange(n) % 2)
    return {
        "release": (np.asarray(release_x, dtype=np.float32), np.asarray(release_y)),
        "leaky": (cand.x[leaky], cand.y[leaky]),
        "leaky_balanced": (cand.x[balanced], cand.y[balanced]),
        "placebo": (noise, labels),
    }


def auditor_control(
    auditor: Callable[[np.ndarray], np.ndarray], x: np.ndarray, slot: np.ndarray, n_persons: int
) -> dict:
    """The attacker's person-ID model on windows it did not learn (`x`, of persons `slot`): it
    must name persons far above chance for attribution to mean anything."""
    hits = auditor(x).argmax(1) == slot
    return {
        "top1_acc": float(hits.mean()),
        "chance": 1 / n_persons,
        "n_persons": n_persons,
        "n_windows": len(slot),
    }


def late_part_control(cand: Candidates, auditor: Callable[[np.ndarray], np.ndarray]) -> dict:
    """The auditor on the late part of every night it learned the early part of."""
    late = np.flatnonzero(~cand.early)
    return auditor_control(auditor, RowView(cand.x, late), cand.slot[late], cand.n_persons)


def other_nights_control(
    owner: Candidates, attacker: Candidates, auditor: Callable[[np.ndarray], np.ndarray]
) -> dict:
    """The other-night auditor on the owner's nights of the persons it learned another night of."""
    shown = np.flatnonzero(np.isin(owner.person, attacker.persons))
    slot = np.searchsorted(attacker.persons, owner.person[shown])
    return auditor_control(auditor, RowView(owner.x, shown), slot, attacker.n_persons)


@dataclass
class OtherNight:
    """The other-night attacker: its candidates and its person-ID model's posteriors."""

    candidates: Candidates
    auditor: Callable[[np.ndarray], np.ndarray]


def split_criteria(
    cand: Candidates,
    release_x: np.ndarray,
    release_y: np.ndarray,
    auditor: Callable[[np.ndarray], np.ndarray],
    attack_students: Mapping[str, Callable[..., Student]],
    cfg: Mapping[str, Any],
    seed: int,
    other_night: OtherNight | None = None,
) -> tuple[dict, dict]:
    """(summary, details) of every criterion on this split for every known-truth release.
    `details["persons"]` holds the per-person scores `stimuli.privacy.verdict` pools; with
    `other_night`, criteria 1-2 are also run for that attacker (`*_other_night`, and its scores
    under `details["other_night"]`)."""
    space = FeatureSpace(cand)
    threshold = copy_threshold(cand, cfg["copy"], seed)
    n_boot, ci = int(cfg["n_bootstrap"]), float(cfg["ci"])
    roc_kw = {"n_bootstrap": n_boot, "ci": ci, "seed": seed}
    roc_kw["family_level"] = float(cfg.get("family_level", ci))
    summary: dict[str, Any] = {"label": ONE_SPLIT, "auditor": late_part_control(cand, auditor)}
    details: dict[str, Any] = {**_person_block(cand), "releases": {}}
    if other_night is not None:
        attacker = other_night.candidates
        attacker_space = FeatureSpace(attacker)
        summary["auditor_other_night"] = other_nights_control(cand, attacker, other_night.auditor)
        details["other_night"] = {**_person_block(attacker), "releases": {}}
    members_f = cand.features[cand.member]
    others_f = cand.features[~cand.member]
    for name, (x, y) in known_truth_releases(cand, release_x, release_y, seed).items():
        features = window_features(x, cand.fs)
        students = fit_attack_students(x, y, attack_students, cand.fs, seed)
        scores = person_scores(cand, space, x, auditor, students, features)
        c1, c2 = _membership_rocs(cand, scores, roc_kw)
        risks = anonymeter_risks(
            members_f,
            cand.y[cand.member],
            features,
            np.asarray(y),
            others_f,
            cand.y[~cand.member],
            cand.feature_names,
            cfg["anonymeter"],
            seed,
        )
        dcr = distance_to_closest_record(
            cand,
            x,
            threshold=threshold,
            windows_per_person=cfg["dcr"].get("windows_per_person"),
            n_bootstrap=int(cfg["dcr"]["n_bootstrap"]),
            ci=ci,
            seed=seed,
        )
        summary[name] = {
            "attribution": _strip_curves(c1),
            "in_out": _strip_curves(c2),
            "anonymeter": risks,
            "dcr": {k: v for k, v in dcr.items() if k != "log_ratio"},
            "spread": _spread(cand, auditor(x)),
        }
        details["releases"][name] = {
            "scores": {k: np.asarray(v).tolist() for k, v in scores.items()},
            "anonymeter": risks,
            "dcr": dcr,
        }
        if other_night is not None:
            theirs = person_scores(
                attacker, attacker_space, x, other_night.auditor, students, features
            )
            o1, o2 = _membership_rocs(attacker, theirs, roc_kw)
            summary[name]["attribution_other_night"] = _strip_curves(o1)
            summary[name]["in_out_other_night"] = _strip_curves(o2)
            details["other_night"]["releases"][name] = {
                "scores": {k: np.asarray(v).tolist() for k, v in theirs.items()}
            }
    return plain(summary), plain(details)


def _person_block(cand: Candidates) -> dict:
    return {"persons": cand.persons.tolist(), "is_member": cand.is_member.tolist()}


def _membership_rocs(cand: Candidates, scores: dict, roc_kw: dict) -> tuple[dict, dict]:
    """Criteria 1 (the attribution scores) and 2 (every score) on one split."""
    select = cand.persons % 2 == 0  # persons that choose the epsilon threshold on one split
    attribution = {k: scores[k] for k in ATTRIBUTION_SCORES}
    kw = {**roc_kw, "select": select}
    return (
        family_roc(cand.persons, cand.is_member, attribution, **kw),
        family_roc(cand.persons, cand.is_member, scores, **kw),
    )


def _spread(cand: Candidates, posteriors: np.ndarray) -> dict:
    """Descriptive only: real windows dealt evenly over persons look "spread" too."""
    member_slots = np.flatnonzero(cand.is_member)
    spread = attribution_stats(
        np.searchsorted(member_slots, posteriors[:, member_slots].argmax(1)),
        len(member_slots),
        np.bincount(cand.slot[cand.member], minlength=cand.n_persons)[member_slots],
    )
    spread.pop("counts")
    return spread


def _strip_curves(block: Mapping[str, dict]) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "roc"} for k, v in block.items()}
