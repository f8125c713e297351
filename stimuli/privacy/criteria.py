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
from typing import Any

import numpy as np

from stimuli.privacy.anonymeter_risks import anonymeter_risks
from stimuli.privacy.candidates import Candidates
from stimuli.privacy.dcr import copy_threshold, distance_to_closest_record
from stimuli.privacy.person_scores import ATTRIBUTION_SCORES, FeatureSpace, person_scores
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


def auditor_control(cand: Candidates, auditor: Callable[[np.ndarray], np.ndarray]) -> dict:
    """The attacker's person-ID model on the late part of every night it learned the early part
    of: it must name persons far above chance for attribution to mean anything."""
    late = ~cand.early
    hits = auditor(cand.x[late]).argmax(1) == cand.slot[late]
    return {
        "top1_acc": float(hits.mean()),
        "chance": 1 / cand.n_persons,
        "n_persons": cand.n_persons,
        "n_windows": int(late.sum()),
    }


def split_criteria(
    cand: Candidates,
    release_x: np.ndarray,
    release_y: np.ndarray,
    auditor: Callable[[np.ndarray], np.ndarray],
    attack_students: Mapping[str, Callable[..., Student]],
    cfg: Mapping[str, Any],
    seed: int,
) -> tuple[dict, dict]:
    """(summary, details) of every criterion on this split for every known-truth release.
    `details["persons"]` holds the per-person scores `stimuli.privacy.verdict` pools."""
    space = FeatureSpace(cand)
    threshold = copy_threshold(cand, cfg["copy"], seed)
    n_boot, ci = int(cfg["n_bootstrap"]), float(cfg["ci"])
    is_member = cand.is_member
    select = cand.persons % 2 == 0  # persons that choose the epsilon threshold on one split
    summary: dict[str, Any] = {"label": ONE_SPLIT, "auditor": auditor_control(cand, auditor)}
    details: dict[str, Any] = {
        "persons": cand.persons.tolist(),
        "is_member": is_member.tolist(),
        "releases": {},
    }
    members_f = cand.features[cand.member]
    others_f = cand.features[~cand.member]
    for name, (x, y) in known_truth_releases(cand, release_x, release_y, seed).items():
        features = window_features(x, cand.fs)
        scores = person_scores(cand, space, x, y, auditor, attack_students, seed, features)
        attribution = {k: scores[k] for k in ATTRIBUTION_SCORES}
        roc_kw = {"select": select, "n_bootstrap": n_boot, "ci": ci, "seed": seed}
        roc_kw["family_level"] = float(cfg.get("family_level", ci))
        c1 = family_roc(cand.persons, is_member, attribution, **roc_kw)
        c2 = family_roc(cand.persons, is_member, scores, **roc_kw)
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
        member_slots = np.flatnonzero(is_member)
        spread = attribution_stats(
            np.searchsorted(member_slots, auditor(x)[:, member_slots].argmax(1)),
            len(member_slots),
            np.bincount(cand.slot[cand.member], minlength=cand.n_persons)[member_slots],
        )
        spread.pop("counts")
        summary[name] = {
            "attribution": _strip_curves(c1),
            "in_out": _strip_curves(c2),
            "anonymeter": risks,
            "dcr": {k: v for k, v in dcr.items() if k != "log_ratio"},
            "spread": spread,  # descriptive only: real windows dealt evenly look "spread" too
        }
        details["releases"][name] = {
            "scores": {k: np.asarray(v).tolist() for k, v in scores.items()},
            "anonymeter": risks,
            "dcr": dcr,
        }
    return plain(summary), plain(details)


def _strip_curves(block: Mapping[str, dict]) -> dict:
    return {k: {kk: vv for kk, vv in v.items() if kk != "roc"} for k, v in block.items()}
