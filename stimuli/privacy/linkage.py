"""Attack 3, the control for attribution: can the auditor's kind of model re-identify a person on
another night? Trained on one night of each person with several nights (any split), scored on
their other nights; chance is 1/N for N such persons."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stimuli.data.cohort import CohortDataModule
from stimuli.privacy.auditor import posteriors, train_person_model
from stimuli.privacy.stats import config_dict, plain


def cohort_windows(dm: CohortDataModule, idx: np.ndarray) -> np.ndarray:
    """Windows `idx` of the whole cohort, normalized like the run's (any split)."""
    x = np.asarray(dm.cache.x[idx], dtype=np.float32)
    if dm.norm_stats:
        mean = np.asarray(dm.norm_stats["mean"], dtype=np.float32)[None, :, None]
        std = np.asarray(dm.norm_stats["std"], dtype=np.float32)[None, :, None]
        x = (x - mean) / std
    return x


def nights_by_person(dm: CohortDataModule) -> dict[int, list[int]]:
    """Global person index → the records (nights) with windows, in record order."""
    person, record = np.asarray(dm.window_person), np.asarray(dm.cache.record_index)
    return {int(p): sorted(set(record[person == p].tolist())) for p in np.unique(person)}


def cross_night_linkage(
    dm: CohortDataModule, cfg: Mapping[str, Any], seed: int, progress: bool = False
) -> tuple[dict, dict]:
    cfg = config_dict(cfg)
    nights = nights_by_person(dm)
    multi = [p for p, recs in nights.items() if len(recs) >= 2]
    if len(multi) < 2:
        reason = (
            "no person has several nights"
            if not multi
            else "only one person has several nights; re-identification needs two or more"
        )
        return {"applicable": False, "reason": reason, "n_persons": len(multi)}, {}
    record = np.asarray(dm.cache.record_index)
    per_record = np.bincount(record, minlength=len(dm.cache.meta["records"]))
    # the longest night of each person trains (ties: the first), the others are scored
    train_night = {p: max(nights[p], key=lambda r: (per_record[r], -r)) for p in multi}
    label_of_record = {r: i for i, p in enumerate(multi) for r in nights[p]}
    train_idx = np.flatnonzero(np.isin(record, list(train_night.values())))
    test_recs = [r for p in multi for r in nights[p] if r != train_night[p]]
    test_idx = np.flatnonzero(np.isin(record, test_recs))
    train_label = np.array([label_of_record[r] for r in record[train_idx]])
    acfg = {**cfg["auditor"], **(cfg["linkage"].get("auditor") or {})}
    model = train_person_model(
        cohort_windows(dm, train_idx),
        train_label,
        len(multi),
        acfg,
        seed + int(cfg["auditor"]["seed_offset"]) + 1,
        progress,
    )
    proba = posteriors(model, cohort_windows(dm, test_idx))
    truth = np.array([label_of_record[r] for r in record[test_idx]])
    # a night is named by the sum of its windows' log posteriors
    log_p = np.log(np.clip(proba, 1e-12, 1.0))
    night_hits = {
        int(r): bool(log_p[record[test_idx] == r].sum(0).argmax() == label_of_record[r])
        for r in test_recs
    }
    summary = {
        "applicable": True,
        "n_persons": len(multi),
        "chance": 1 / len(multi),
        "window_top1_acc": float((proba.argmax(1) == truth).mean()),
        "night_top1_acc": float(np.mean(list(night_hits.values()))),
        "n_test_nights": len(test_recs),
        "n_test_windows": len(test_idx),
    }
    details = {  # nights by record index, persons by their linkage label 0…N-1
        "train_nights": {int(train_night[p]): i for i, p in enumerate(multi)},
        "test_nights": {int(r): label_of_record[r] for r in test_recs},
        "night_hit": night_hits,
    }
    return plain(summary), plain(details)
