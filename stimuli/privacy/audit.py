"""The whole privacy audit: every attack on the release, with the controls that show each attack
works on real data ("a privacy claim counts only when an attack that demonstrably works on real
data fails on the stimuli"), and the targets as booleans."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from stimuli.data.cohort import CohortDataModule
from stimuli.privacy.attribution import attribution_by_classifier, attribution_by_neighbour
from stimuli.privacy.copy_distance import copy_distance
from stimuli.privacy.linkage import cross_night_linkage
from stimuli.privacy.membership import membership_inference
from stimuli.privacy.real import RealWindows
from stimuli.privacy.stats import config_dict, plain

log = logging.getLogger(__name__)


def meets_targets(summary: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, Any]:
    """The owner's targets on the release, and whether every control beats chance (without
    which a target met proves nothing). A control that cannot run here (linkage without
    multi-night persons, the leaky release switched off) is None and left out of
    `controls_have_power`."""
    ratio, ent = float(targets["top1_ratio_max"]), float(targets["entropy_min"])
    power = float(targets["control_min_ratio"])

    def spread(block: Mapping[str, Any]) -> bool:
        return block["top1_ratio"] <= ratio and block["entropy"] >= ent

    def above_chance(acc: float, chance: float) -> bool:
        return acc >= power * chance

    ac, an = summary["attribution_classifier"], summary["attribution_neighbour"]
    mi, cd, ln = summary["membership"], summary["copy_distance"], summary["linkage"]
    release_aucs = [a for a in mi["release"].values() if a["auc"] is not None]
    attribution = {
        "attribution_classifier": ac,
        **{f"attribution_neighbour_{v}": b for v, b in an.items()},
    }
    release = {
        **{name: spread(block["release"]) for name, block in attribution.items()},
        "membership": all(
            a["auc"] <= float(targets["auc_max"]) and a["covers_chance"] for a in release_aucs
        ),
        "copy_distance": cd["release"]["flagged"] == 0,
    }
    controls: dict[str, bool | None] = {
        "auditor": above_chance(ac["control"]["top1_acc"], ac["control"]["chance"]),
        **{
            f"neighbour_{v}": above_chance(b["control"]["top1_acc"], b["control"]["chance"])
            for v, b in an.items()
        },
        "linkage": above_chance(ln["window_top1_acc"], ln["chance"]) if ln["applicable"] else None,
    }
    leaky_min = float(targets["leaky_auc_min"])
    for name, block in mi["controls"].items():
        if name.startswith("leaky_"):
            auc = block["auc"]
            controls[f"membership_{name}"] = None if auc is None else auc >= leaky_min
    controls["copy_leaky"] = cd["leaky"]["flagged"] > 0 if "leaky" in cd else None
    powered = all(v for v in controls.values() if v is not None)
    # The attribution targets applied to the balanced leaky release (real windows, as many of
    # each training person): True says that the target is met by the leakiest release too, so
    # meeting it cannot show anonymity.
    leaky_balanced = {
        name: spread(block["leaky_balanced"])
        for name, block in attribution.items()
        if "leaky_balanced" in block
    }
    return {
        "release": release,
        "controls": controls,
        "controls_have_power": powered,
        "leaky_balanced_meets_attribution": leaky_balanced or None,
        "all": powered and all(release.values()),
    }


def audit_privacy(
    dm: CohortDataModule,
    teacher: torch.nn.Module,
    stimuli_x: np.ndarray,
    students: Mapping[str, Any],
    cfg: Any,
    seed: int,
    progress: bool = False,
) -> tuple[dict, dict]:
    """Every attack on `stimuli_x` (the released windows). Returns a small summary (for
    results.json) and the details (per-person scores, histograms; for privacy.json)."""
    cfg, seed = config_dict(cfg), int(seed)
    x = np.asarray(stimuli_x, dtype=np.float32)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    real = RealWindows.for_audit(dm, cfg)
    leaky = balanced = None
    if cfg.get("leaky_control", True):
        leaky = real.leaky_release(len(x), seed)
        balanced = real.balanced_leaky_release(len(x), seed)
    attacks = {
        "attribution_classifier": lambda: attribution_by_classifier(
            dm, x, cfg, seed, real=real, leaky_x=leaky, leaky_balanced_x=balanced, progress=progress
        ),
        "attribution_neighbour": lambda: attribution_by_neighbour(
            dm, teacher, x, cfg, seed, real=real, leaky_x=leaky, leaky_balanced_x=balanced
        ),
        "linkage": lambda: (
            cross_night_linkage(dm, cfg, seed, progress=progress)
            if cfg["linkage"].get("enabled", True)
            else ({"applicable": False, "reason": "disabled (privacy.linkage.enabled=false)"}, {})
        ),
        "membership": lambda: membership_inference(
            dm, teacher, x, students, cfg, seed, real=real, leaky_x=leaky
        ),
        "copy_distance": lambda: copy_distance(dm, x, cfg, seed, real=real, leaky_x=leaky),
    }
    summary: dict[str, Any] = {"n_stimuli": len(x), "n_persons": real.n_persons}
    details: dict[str, Any] = {}
    for name, attack in attacks.items():
        t = time.perf_counter()
        summary[name], details[name] = attack()
        seconds[name] = time.perf_counter() - t
        log.info("privacy: %s done in %.1f s", name, seconds[name])
    summary["meets_targets"] = meets_targets(summary, cfg["targets"])
    seconds["total"] = time.perf_counter() - start
    summary["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    return plain(summary), plain(details)
