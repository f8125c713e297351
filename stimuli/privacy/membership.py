"""Attack 4: person-level membership inference against the release.

Members are the training persons, non-members the held-out (val + test) persons. Every score is
oriented so that higher means "more likely a member" (AUC 0.5 = chance):
- `knn_raw` / `knn_embedding`: minus the mean over the person's real windows of the log distance
  to their `k` nearest released windows (raw space; the teacher's standardized embedding space).
  The log lets a few copied windows weigh: with plain distances, a release holding a tenth of each
  member's windows scored only AUC ~0.75 on the full open cohort; with logs, 1.0;
- `knn_raw_min` / `knn_embedding_min`: minus the person's smallest such distance (its closest
  approach to the release), which catches a few copies that a mean over hundreds of windows
  dilutes;
- `student_loss/NAME`: minus the person's mean cross-entropy under a student trained on the release;
- controls: `teacher_loss` (the teacher itself) and `leaky_knn_*` (real training windows
  released as if they were stimuli), which must score clearly above chance;
- baselines: `placebo_knn_*`, the same distances to a placebo release of as many white-noise
  windows, which carries nothing of the cohort. What a placebo scores comes from the space, not
  from a release: in the teacher's embedding, members' windows lie farther out than non-members'
  (the teacher fits them more confidently), so distances to any reference set there can sort
  persons, in either direction, without a release leaking anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from stimuli.classifier import predict_proba
from stimuli.data.cohort import CohortDataModule
from stimuli.privacy.neighbours import knn
from stimuli.privacy.real import RealWindows
from stimuli.privacy.stats import bootstrap_auc, config_dict, plain, rng_for


def _per_person_sample(person: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Indices of at most `cap` windows of each person (all with `cap=None`), drawn with `seed`."""
    if cap is None:
        return np.arange(len(person))
    rng = rng_for(seed, "membership")
    keep = []
    for p in np.unique(person):
        idx = np.flatnonzero(person == p)
        keep.append(idx if len(idx) <= cap else rng.choice(idx, cap, replace=False))
    return np.sort(np.concatenate(keep))


def _log_knn_distance(reference: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Log of each query's mean distance to its `k` nearest reference rows; exact copies get a
    floor a thousand times below the median distance instead of minus infinity."""
    d = knn(reference, query, k)[0].mean(1)
    positive = d[d > 0]
    floor = 1e-3 * (np.median(positive) if len(positive) else 1.0)
    return np.log(d + floor)


def placebo_release(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """`n` windows of unit-variance white noise (inputs are standardized), drawn with `seed`."""
    return rng_for(seed, "placebo").standard_normal((n, *shape)).astype(np.float32)


def _cross_entropy(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0))


def membership_inference(
    dm: CohortDataModule,
    teacher: torch.nn.Module,
    stimuli_x: np.ndarray,
    students: Mapping[str, Any],
    cfg: Mapping[str, Any],
    seed: int,
    *,
    real: RealWindows | None = None,
    leaky_x: np.ndarray | None = None,
) -> tuple[dict, dict]:
    cfg = config_dict(cfg)
    real = real or RealWindows.for_audit(dm, cfg)
    mcfg = cfg["membership"]
    k = int(mcfg.get("k") or cfg["k"])
    space, train_emb, out_emb = real.embedded(teacher)
    person = np.concatenate([real.person_train, real.person_out])
    sel = _per_person_sample(person, mcfg.get("max_windows_per_person"), seed)
    q = {
        "x": np.concatenate([real.x_train, real.x_out])[sel],
        "y": np.concatenate([real.y_train, real.y_out])[sel],
        "person": person[sel],
        "emb": np.concatenate([train_emb, out_emb])[sel],
    }
    persons = np.unique(q["person"])
    members = set(np.unique(real.person_train).tolist())
    is_member = np.array([p in members for p in persons])
    slot = np.searchsorted(persons, q["person"])
    counts = np.bincount(slot, minlength=len(persons))

    def per_person(values: np.ndarray) -> np.ndarray:
        return np.bincount(slot, weights=values, minlength=len(persons)) / counts

    def person_min(values: np.ndarray) -> np.ndarray:
        out = np.full(len(persons), np.inf)
        np.minimum.at(out, slot, values)
        return out

    scores: dict[str, np.ndarray] = {}
    placebo = placebo_release(len(stimuli_x), stimuli_x.shape[1:], seed)
    for prefix, x in (("", stimuli_x), ("leaky_", leaky_x), ("placebo_", placebo)):
        if x is None:
            continue
        for view, (ref, query) in {"raw": (x, q["x"]), "embedding": (space(x), q["emb"])}.items():
            log_d = _log_knn_distance(ref, query, k)
            scores[f"{prefix}knn_{view}"] = -per_person(log_d)
            scores[f"{prefix}knn_{view}_min"] = -person_min(log_d)
    wanted = mcfg.get("students")
    skipped = {}
    for name, student in students.items():
        if wanted is not None and name not in wanted:
            continue
        if not hasattr(student, "predict_proba"):  # e.g. the error of a student that failed
            skipped[name] = str(student)
            continue
        proba = np.asarray(student.predict_proba(q["x"]), dtype=np.float64)
        scores[f"student_loss/{name}"] = -per_person(_cross_entropy(proba, q["y"]))
    teacher_p = predict_proba(teacher, torch.from_numpy(q["x"])).numpy().astype(np.float64)
    scores["teacher_loss"] = -per_person(_cross_entropy(teacher_p, q["y"]))

    n_boot, ci = int(mcfg["n_bootstrap"]), float(mcfg["ci"])
    aucs = {name: bootstrap_auc(s, is_member, n_boot, ci, seed) for name, s in scores.items()}
    is_control = {n: n == "teacher_loss" or n.startswith("leaky_") for n in aucs}
    is_baseline = {n: n.startswith("placebo_") for n in aucs}
    summary = {
        "release": {n: a for n, a in aucs.items() if not (is_control[n] or is_baseline[n])},
        "controls": {n: a for n, a in aucs.items() if is_control[n]},
        "baselines": {n: a for n, a in aucs.items() if is_baseline[n]},
        "n_members": int(is_member.sum()),
        "n_non_members": int((~is_member).sum()),
        "windows_per_person": int(np.median(counts)),
    }
    if skipped:
        summary["students_skipped"] = skipped
    details = {
        "persons": [
            {
                "person": int(p),
                "member": bool(m),
                "windows": int(c),
                **{name: float(s[i]) for name, s in scores.items()},
            }
            for i, (p, m, c) in enumerate(zip(persons, is_member, counts))
        ],
        "auc": aucs,
    }
    return plain(summary), plain(details)
