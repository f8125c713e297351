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


def _scores(block: Any) -> dict:
    """{score name: {auc, family-wise interval}} of a family of membership scores."""
    out = {}
    for name, values in (block or {}).items():
        key = str(name).replace("/", ".")
        if _SAFE_STR.fullmatch(key) and isinstance(values, Mapping):
            out[key] = whitelisted(values, ("auc", "family_ci_low", "family_ci_high"), "privacy")
    return out


def privacy_summary(results: Mapping[str, Any]) -> dict | None:
    """This run's one-split criteria on the release (headline numbers, no per-person values)."""
    audit = results.get("privacy")
    release = audit.get("release") if isinstance(audit, Mapping) else None
    if not isinstance(release, Mapping):
        return None
    dcr_keys = ("share", "ci_low", "ci_high", "near_copies")
    risks = release.get("anonymeter") or {}
    other_night = {  # with privacy.attacker_nights
        f"{c}_auc": _scores(release[c])
        for c in ("attribution_other_night", "in_out_other_night")
        if c in release
    }
    return {
        "label": "one split, not a verdict",
        "attribution_auc": _scores(release.get("attribution")),
        "in_out_auc": _scores(release.get("in_out")),
        "anonymeter": {
            k: whitelisted(v, ("risk", "ci_low", "ci_high"), "privacy")
            for k, v in risks.items()
            if _SAFE_STR.fullmatch(str(k)) and isinstance(v, Mapping)
        },
        "dcr": whitelisted(release.get("dcr") or {}, dcr_keys, "privacy"),
        **other_night,
        "audited_on": "the data owner's training persons (members) and held-out persons",
    }


def verdict_summary(verdict: Mapping[str, Any] | None) -> dict:
    """The verdict of the release's mechanism as the datacard carries it: per criterion whether
    it passed and its worst numbers, K and the mechanism hash (never person indices)."""
    if not verdict:
        return {"anonymity": "not audited", "how": AUDIT_COMMAND}
    criteria = {}
    for name, block in (verdict.get("criteria") or {}).items():
        release = block.get("release") or {}
        criteria[str(name)] = {
            "pass": bool(block.get("pass")),
            "controls_powered": bool(block.get("powered")),
            "placebo_passes": bool(block.get("valid")),
            "worst": plain_config(release.get("worst")),
        }
    return {
        "anonymity": ANONYMITY[verdict.get("anonymity") == "established"],
        "failing": [str(f) for f in verdict.get("failing") or []],
        "n_splits": int(verdict.get("n_splits", 0)),
        "mechanism": _safe_value(str(verdict.get("mechanism"))),
        "rules": plain_config(verdict.get("rules")),
        "criteria": criteria,
    }


ANONYMITY = ("not established", "established")
AUDIT_COMMAND = "python -m stimuli.audit +experiment=<the release's experiment> audit.splits=8"


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
    verdict: Mapping[str, Any] | None = None,
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
    card["verdict"] = verdict_summary(verdict)
    return card
