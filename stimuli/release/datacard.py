"""`datacard.json`: built from whitelisted fields only, so nothing of the cohort can enter it."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stimuli.config import plain_config
from stimuli.metrics import METRIC_NAMES
from stimuli.models import model_parameters
from stimuli.release.layout import FORMAT, NPZ
from stimuli.release.patterns import DATE_RE
from stimuli.schema import DEFAULT_WEIGHTS, SynthesisConfig, public_fields

log = logging.getLogger(__name__)

# Derived from the schema (stimuli/schema.py): every public synthesis setting, every loss weight.
SYNTHESIS_KEYS = tuple(public_fields(SynthesisConfig))
SYNTHESIS_WEIGHT_KEYS = tuple(DEFAULT_WEIGHTS)


def model_keys(model_cfg: Mapping[str, Any] | None) -> list[str]:
    """The teacher architecture's public keys: its `_target_` and the hyperparameters its class
    accepts (the constructor is the one source of what a model config may hold)."""
    if not model_cfg or "_target_" not in model_cfg:
        return []
    return ["_target_", "_partial_", *model_parameters(model_cfg)]


STIMULI_META_KEYS = ("n", "steps", "teacher_agreement")
METRIC_KEYS = METRIC_NAMES
_SAFE_STR = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")


def _safe_value(value: Any) -> Any:
    """A number, bool, null, short plain string or list of them; anything else raises."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ValueError("non-finite number")
        return float(value)
    if isinstance(value, str):
        if _SAFE_STR.fullmatch(value) and not DATE_RE.search(value):
            return value
        raise ValueError(f"string {value!r} is not a plain identifier")
    if isinstance(value, (list, tuple)):
        return [_safe_value(v) for v in value]
    raise ValueError(f"{type(value).__name__} is not allowed")


def whitelisted(cfg: Mapping[str, Any] | None, keys: Sequence[str], where: str) -> dict:
    """The entries of `cfg` named in `keys` whose values are plain; the rest is left out."""
    out: dict[str, Any] = {}
    for key in keys:
        if not cfg or key not in cfg:
            continue
        try:
            out[key] = _safe_value(cfg[key])
        except ValueError as err:
            log.warning("datacard: %s.%s left out (%s)", where, key, err)
    return out


def utility_summary(results: Mapping[str, Any], soft_labels: bool = True) -> dict | None:
    """Teacher and student scores on the owner's test persons (metrics only), when measured;
    without `soft_labels` in the bundle, not the students distilled from them (`*_kd`)."""
    out: dict[str, Any] = {}
    teacher = (results.get("teacher") or {}).get("test")
    if isinstance(teacher, Mapping):
        out["teacher"] = whitelisted(teacher, METRIC_KEYS, "teacher")
    students = {}
    for name, block in (results.get("students") or {}).items():
        if not (isinstance(name, str) and _SAFE_STR.fullmatch(name)):
            continue
        variants = {}
        for variant, metrics in (block or {}).items():
            if (
                isinstance(variant, str)
                and _SAFE_STR.fullmatch(variant)
                and isinstance(metrics, Mapping)
                and (soft_labels or not variant.endswith("_kd"))
            ):
                variants[variant] = whitelisted(metrics, METRIC_KEYS, f"{name}.{variant}")
        students[name] = variants
    if students:
        out["students"] = students
    if not out:
        return None
    out["scored_on"] = "windows of the data owner's held-out test persons"
    return out


ATTRIBUTION_KEYS = ("top1_share", "top1_ratio", "entropy", "kl_to_training")
NON_MEMBER_KEYS = (
    "top1_ratio",
    "entropy",
    "single_non_member_top1_ratio",
    "single_non_member_entropy",
)


def privacy_summary(results: Mapping[str, Any]) -> dict | None:
    """The audit's headline numbers on the release (no per-person values), when it ran."""
    audit = results.get("privacy")
    if not isinstance(audit, Mapping):
        return None
    out: dict[str, Any] = {}
    attacks = {"attribution_classifier": audit.get("attribution_classifier") or {}}
    for view, block in (audit.get("attribution_neighbour") or {}).items():
        if _SAFE_STR.fullmatch(str(view)) and isinstance(block, Mapping):
            attacks[f"attribution_neighbour_{view}"] = block
    for name, block in attacks.items():
        if not isinstance(block.get("release"), Mapping):
            continue
        out[name] = whitelisted(block["release"], ATTRIBUTION_KEYS, "privacy")
        if isinstance(block.get("non_members"), Mapping):  # real windows of non-members
            out[name]["non_member_reference"] = whitelisted(
                block["non_members"], NON_MEMBER_KEYS, "privacy"
            )
    membership = (audit.get("membership") or {}).get("release") or {}
    aucs = {}
    for name, block in membership.items():
        key = str(name).replace("/", ".")
        if _SAFE_STR.fullmatch(key) and isinstance(block, Mapping):
            aucs[key] = whitelisted(block, ("auc", "ci_low", "ci_high"), "privacy")
    if aucs:
        out["membership_auc"] = aucs
    copies = (audit.get("copy_distance") or {}).get("release")
    if isinstance(copies, Mapping):
        out["copy_distance"] = whitelisted(
            copies, ("share_closer_to_training", "flagged"), "privacy"
        )
    targets = audit.get("meets_targets") or {}
    if isinstance(targets.get("release"), Mapping):
        out["meets_targets"] = whitelisted(targets["release"], list(targets["release"]), "privacy")
        out["controls_have_power"] = bool(targets.get("controls_have_power"))
    if not out:
        return None
    out["audited_on"] = "the data owner's training persons (members) and held-out persons"
    return out


def make_datacard(
    arrays: Mapping[str, np.ndarray],
    *,
    channels: Sequence[str],
    fs: float,
    label_names: Sequence[str],
    normalize: str,
    synthesis: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    stimuli_meta: Mapping[str, Any] | None = None,
    results: Mapping[str, Any] | None = None,
    soft_label_teachers: int = 1,
) -> dict:
    """The datacard, built from whitelisted fields only. `soft_label_teachers`: how many
    teachers' probabilities the soft labels average (1: the teacher's own)."""
    x, labels = arrays["x"], arrays["labels"]
    n, n_chans, n_times = (int(s) for s in x.shape)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(label_names))
    synthesis = plain_config(synthesis) or {}
    model = plain_config(model) or {}
    synth = whitelisted(synthesis, [k for k in SYNTHESIS_KEYS if k != "weights"], "synthesis")
    if isinstance(synthesis.get("weights"), Mapping):
        synth["weights"] = whitelisted(synthesis["weights"], SYNTHESIS_WEIGHT_KEYS, "weights")
    card: dict[str, Any] = {
        "format": FORMAT,
        "files": {
            NPZ: {
                k: {"dtype": str(a.dtype), "shape": [int(s) for s in a.shape]}
                for k, a in arrays.items()
            }
        },
        "n": n,
        "channels": [_safe_value(str(c)) for c in channels],
        "fs": float(fs),
        "window": {"seconds": n_times / float(fs), "samples": n_times},
        "normalize": _safe_value(normalize),
        "labels": {
            "names": [_safe_value(str(s)) for s in label_names],
            "counts": {str(s): int(c) for s, c in zip(label_names, counts, strict=False)},
        },
        "soft_labels": "soft" in arrays,
        "synthesis": synth,
        "teacher": {
            "architecture": whitelisted(model, model_keys(model), "model"),
            "n_chans": n_chans,
            "n_times": n_times,
            "n_outputs": len(label_names),
        },
    }
    if "soft" in arrays:
        card["soft_label_teachers"] = int(soft_label_teachers)
    if stimuli_meta:
        card["stimuli"] = whitelisted(stimuli_meta, STIMULI_META_KEYS, "stimuli")
    utility = utility_summary(results or {}, soft_labels="soft" in arrays)
    if utility:
        card["utility"] = utility
    privacy = privacy_summary(results or {})
    if privacy:
        card["privacy"] = privacy
    return card
