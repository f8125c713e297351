"""The anonymity verdict of a mechanism: the criteria pooled over K person splits.

Each split's privacy stage (`stimuli.privacy.criteria.split_criteria`) scored every candidate
person for every known-truth release. Pooling them:

1. attribution as membership: members against non-members over all (split, person)
   observations, the attribution scores as they are;
2. per-person in/out test (LiRA-style): every score of a person minus the mean of the same
   person's out-of-split scores (its other out-of-split scores, for an out observation), so what
   is only the attacker's geometry (an easy person, a person with many nights) cancels;
3. Anonymeter risks with the attack counts of the splits summed;
4. distance to closest record: the mean share over the splits, with the mean of their interval
   ends (as if the splits were fully dependent, the conservative choice), and the near copies
   summed.

With the other-night attacker (`privacy.attacker_nights`), criteria 1 and 2 are pooled for it
too (`attribution_other_night`, `in_out_other_night`) from its own per-person scores.

Each criterion is judged on the release and on the controls; it counts only when the leaky
releases fail it (power) and the placebo passes it (validity). `anonymity` is "established" only
when every criterion counts and the release passes every one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stimuli.privacy.anonymeter_risks import pool_risks
from stimuli.privacy.person_scores import ATTRIBUTION_SCORES
from stimuli.privacy.roc import family_roc
from stimuli.privacy.stats import plain

CRITERIA = ("attribution", "in_out", "anonymeter", "dcr")
OTHER_NIGHT = ("attribution_other_night", "in_out_other_night")
LEAKY = ("leaky", "leaky_balanced")


def observations(splits: Sequence[Mapping], release: str) -> dict[str, Any]:
    """(split, person) observations of `release`: person, member, split index, scores."""
    person, member, split, scores = [], [], [], {}
    for k, d in enumerate(splits):
        block = d["releases"][release]["scores"]
        person += list(d["persons"])
        member += list(d["is_member"])
        split += [k] * len(d["persons"])
        for name, values in block.items():
            scores.setdefault(name, []).extend(values)
    return {
        "person": np.asarray(person),
        "member": np.asarray(member, dtype=bool),
        "split": np.asarray(split),
        "scores": {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()},
    }


def calibrate(person: np.ndarray, member: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each observation minus the mean of the same person's *other* out-of-split observations
    (NaN where there is none)."""
    out = np.full(len(values), np.nan)
    for p in np.unique(person):
        idx = np.flatnonzero(person == p)
        outs = idx[~member[idx] & np.isfinite(values[idx])]
        total, n = values[outs].sum(), len(outs)
        for i in idx:
            own = i in outs
            if n - own > 0:
                out[i] = values[i] - (total - (values[i] if own else 0.0)) / (n - own)
    return out


def judge_roc(block: Mapping[str, dict], rules: Mapping[str, float]) -> dict:
    """The worst score of a family against the AUC, TPR and epsilon rules."""
    scored = {k: v for k, v in block.items() if v.get("auc") is not None}
    if not scored:
        return {"pass": None, "reason": "no score could be computed"}
    worst_auc = max(scored, key=lambda k: scored[k]["auc"])
    worst_tpr = max(scored, key=lambda k: scored[k]["tpr_at_fpr_0.1_ci_low"])
    worst_eps = max(scored, key=lambda k: scored[k]["epsilon_lb"])
    checks = {
        "auc": scored[worst_auc]["auc"] <= rules["auc_max"],
        "covers_chance": all(v["covers_chance"] for v in scored.values()),
        "tpr_at_fpr_0.1": scored[worst_tpr]["tpr_at_fpr_0.1_ci_low"] <= rules["tpr_at_fpr_0.1_max"],
        "epsilon_lb": scored[worst_eps]["epsilon_lb"] <= rules["epsilon_lb_max"],
    }
    return {
        "pass": all(checks.values()),
        "checks": checks,
        "worst": {
            "auc": [worst_auc, scored[worst_auc]["auc"]],
            "family_ci": [
                scored[worst_auc]["family_ci_low"],
                scored[worst_auc]["family_ci_high"],
            ],
            "tpr_at_fpr_0.1": [
                worst_tpr,
                scored[worst_tpr]["tpr_at_fpr_0.1"],
                scored[worst_tpr]["tpr_at_fpr_0.1_ci_low"],
            ],
            "epsilon_lb": [worst_eps, scored[worst_eps]["epsilon_lb"]],
        },
        "scores": {k: score_summary(v) for k, v in scored.items()},
    }


def score_summary(block: Mapping[str, Any]) -> dict:
    """One score's numbers as the verdict reports them beside the worst: AUC with its raw and
    family-wise intervals, TPR at FPR 0.1 with its lower bound, epsilon lower bound."""
    keys = ("auc", "ci_low", "ci_high", "family_ci_low", "family_ci_high", "tpr_at_fpr_0.1")
    return {
        **{k: block[k] for k in keys if k in block},
        "tpr_at_fpr_0.1_ci_low": block["tpr_at_fpr_0.1_ci_low"],
        "epsilon_lb": block["epsilon_lb"],
    }


def judge_risks(risks: Mapping[str, dict], rules: Mapping[str, float]) -> dict:
    checks = {k: v["ci_high"] <= rules["risk_high_max"] for k, v in risks.items()}
    worst = max(risks, key=lambda k: risks[k]["ci_high"])
    return {"pass": all(checks.values()), "checks": checks, "worst": [worst, risks[worst]]}


def judge_dcr(dcr: Mapping[str, Any], rules: Mapping[str, float]) -> dict:
    checks = {
        "share": dcr["share"] <= rules["dcr_share_max"],
        "covers_half": dcr["ci_low"] <= 0.5 <= dcr["ci_high"],
        "near_copies": dcr["near_copies"] <= rules["near_copies_max"],
    }
    return {"pass": all(checks.values()), "checks": checks}


def _select(obs: Mapping[str, np.ndarray], n_splits: int) -> np.ndarray:
    """Observations that choose the epsilon threshold: the first half of the splits."""
    return obs["split"] < max(n_splits // 2, 1) if n_splits > 1 else obs["person"] % 2 == 0


def pooled_rocs(
    splits: Sequence[Mapping], release: str, cfg: Mapping[str, Any], seed: int
) -> dict[str, dict]:
    """Criteria 1 (attribution scores as they are) and 2 (every score, calibrated per person)
    of `release` over `splits` (blocks with `persons`, `is_member` and per-release scores)."""
    obs = observations(splits, release)
    kw = {
        "select": _select(obs, len(splits)),
        "n_bootstrap": int(cfg["n_bootstrap"]),
        "ci": float(cfg["ci"]),
        "family_level": float(cfg.get("family_level", cfg["ci"])),
        "seed": seed,
    }
    attribution = {k: obs["scores"][k] for k in ATTRIBUTION_SCORES}
    calibrated = {k: calibrate(obs["person"], obs["member"], v) for k, v in obs["scores"].items()}
    return {
        "attribution": family_roc(obs["person"], obs["member"], attribution, **kw),
        "in_out": family_roc(obs["person"], obs["member"], calibrated, **kw),
        "mass": {  # for the report: the auditor's attribution mass, members vs non-members
            "member": obs["member"].tolist(),
            "auditor_mass": obs["scores"]["auditor_mass"].tolist(),
        },
    }


def pooled_criteria(
    splits: Sequence[Mapping], release: str, cfg: Mapping[str, Any], seed: int
) -> dict[str, dict]:
    """Every criterion of `release` pooled over `splits` (each split's privacy details), with
    ROC curves (`roc`) for the report."""
    dcr = [d["releases"][release]["dcr"] for d in splits]
    out = {
        **pooled_rocs(splits, release, cfg, seed),
        "anonymeter": pool_risks(
            [d["releases"][release]["anonymeter"] for d in splits], float(cfg["ci"])
        ),
        "dcr": {
            "share": float(np.mean([d["share"] for d in dcr])),
            "ci_low": float(np.mean([d["ci_low"] for d in dcr])),
            "ci_high": float(np.mean([d["ci_high"] for d in dcr])),
            "near_copies": int(sum(d["near_copies"] for d in dcr)),
            "split_shares": [d["share"] for d in dcr],
            "log_ratio": [v for d in dcr for v in d["log_ratio"]],
        },
    }
    if all("other_night" in d for d in splits):
        theirs = pooled_rocs([d["other_night"] for d in splits], release, cfg, seed)
        out["attribution_other_night"] = theirs["attribution"]
        out["in_out_other_night"] = theirs["in_out"]
        out["mass_other_night"] = theirs["mass"]
    return out


def judge(criterion: str, block: Any, rules: Mapping[str, float]) -> dict:
    if criterion.startswith(("attribution", "in_out")):
        return judge_roc(block, rules)
    if criterion == "anonymeter":
        return judge_risks(block, rules)
    return judge_dcr(block, rules)


def auditor_power(controls: Sequence[Mapping], rules: Mapping[str, float]) -> dict:
    """An auditor's top-1 on windows it did not learn, averaged over the splits, against
    `auditor_min_ratio` x chance."""
    top1 = float(np.mean([a["top1_acc"] for a in controls]))
    chance = float(np.mean([a["chance"] for a in controls]))
    return {
        "top1_acc": top1,
        "chance": chance,
        "powered": top1 >= rules["auditor_min_ratio"] * chance,
    }


def verdict(
    splits: Sequence[Mapping],
    auditor: Sequence[Mapping],
    cfg: Mapping[str, Any],
    seed: int,
    other_night_auditor: Sequence[Mapping] | None = None,
) -> tuple[dict, dict]:
    """(verdict, pooled): the judgment of every criterion on the release and its controls, and
    the pooled statistics behind it (ROC curves, DCR ratios) for the audit report.
    `auditor` (and `other_night_auditor`, with the other-night attacker): each split's control
    of the attacker's person-ID model."""
    rules = cfg["rules"]
    releases = list(splits[0]["releases"])
    pooled = {r: pooled_criteria(splits, r, cfg, seed) for r in releases}
    power = {"attribution": auditor_power(auditor, rules)}
    names = list(CRITERIA)
    if "attribution_other_night" in pooled["release"]:
        if not other_night_auditor:
            raise ValueError("the other-night criteria need the other-night auditor's controls")
        power["attribution_other_night"] = auditor_power(other_night_auditor, rules)
        names += OTHER_NIGHT
    criteria: dict[str, Any] = {}
    for c in names:
        judged = {r: judge(c, pooled[r][c], rules) for r in releases}
        powered = all(judged[r]["pass"] is False for r in LEAKY if r in judged)
        if c in power:
            powered = powered and power[c]["powered"]
        valid = judged.get("placebo", {}).get("pass") is True
        criteria[c] = {
            "release": judged["release"],
            "controls": {r: judged[r] for r in releases if r != "release"},
            "powered": powered,
            "valid": valid,
            "counts": powered and valid,
            "pass": bool(judged["release"]["pass"]) and powered and valid,
        }
    failing = [c for c, v in criteria.items() if not v["pass"]]
    out = {
        "anonymity": "not established" if failing else "established",
        "failing": failing,
        "n_splits": len(splits),
        "auditor": power["attribution"],
        **(
            {"auditor_other_night": power["attribution_other_night"]}
            if "attribution_other_night" in power
            else {}
        ),
        "rules": dict(rules),
        "criteria": criteria,
    }
    return plain(out), pooled


def utility_over_splits(results: Sequence[Mapping]) -> dict:
    """Each student's accuracy and kappa per variant over the splits: mean, sd and worst."""
    table: dict[str, dict] = {}
    for r in results:
        for student, variants in (r.get("students") or {}).items():
            for variant, metrics in variants.items():
                if not isinstance(metrics, Mapping) or "error" in metrics:
                    continue
                cell = table.setdefault(student, {}).setdefault(variant, {})
                for m in ("acc", "kappa"):
                    cell.setdefault(m, []).append(metrics[m])
    out: dict[str, dict] = {}
    for student, variants in table.items():
        for variant, metrics in variants.items():
            out.setdefault(student, {})[variant] = {
                m: {
                    "mean": float(np.mean(v)),
                    "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                    "worst": float(np.max(v) if variant.startswith("gap") else np.min(v)),
                    "n": len(v),
                }
                for m, v in metrics.items()
            }
    return plain(out)
