"""Per-person membership scores of one release: the attacks of criteria 1 and 2.

Every score is computed for every candidate person (members and non-members alike, the same
attack) and oriented so that higher means "more likely a member":

- attribution (criterion 1): the attacker's person-ID model trained on the early part of every
  candidate's nights (`auditor_mass`: mean posterior of the release on the person;
  `auditor_top1`: share of released windows it names the person for), and nearest-neighbour
  attribution (`nn_raw`, `nn_features`: share of released windows whose nearest candidate window
  is the person's, in raw space and in the documented feature space a third party has);
- distance (criterion 2): minus the mean / the smallest log distance of the person's windows to
  their nearest released window (`dist_raw`, `dist_raw_min`, `dist_features`,
  `dist_features_min`);
- student loss (criterion 2): minus the person's mean cross-entropy under each attack student
  trained on the release (`loss/NAME`).

No space here is learned from the cohort's membership (the auditor sees every candidate, the
features are fixed formulas, attack students see only the release), so a release that carries
nothing of the members (the white-noise placebo) cannot score above chance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

from stimuli.data.datasets import RowView
from stimuli.privacy.candidates import Candidates
from stimuli.privacy.neighbours import READ_ROWS, knn
from stimuli.students.base import Student
from stimuli.students.features import window_features

ATTRIBUTION_SCORES = ("auditor_mass", "auditor_top1", "nn_raw", "nn_features")
Posteriors = Callable[[np.ndarray], np.ndarray]


class FeatureSpace:
    """The window features standardized on every candidate's windows."""

    def __init__(self, cand: Candidates) -> None:
        self.fs = cand.fs
        self.scaler = StandardScaler().fit(cand.features)
        self.candidates = self.scaler.transform(cand.features).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.standardized(window_features(x, self.fs))

    def standardized(self, features: np.ndarray) -> np.ndarray:
        return self.scaler.transform(features).astype(np.float32)


def _log_distance(d: np.ndarray) -> np.ndarray:
    """Log distances with exact copies floored a thousand times below the median distance."""
    positive = d[d > 0]
    floor = 1e-3 * (np.median(positive) if len(positive) else 1.0)
    return np.log(d + floor)


def _share(cand: Candidates, slots: np.ndarray) -> np.ndarray:
    return np.bincount(slots, minlength=cand.n_persons) / max(len(slots), 1)


def fit_attack_students(
    release_x: np.ndarray,
    release_y: np.ndarray,
    factories: Mapping[str, Callable[..., Student]],
    fs: float,
    seed: int,
) -> dict[str, Student]:
    """The attacker's students trained on the release alone (their losses are scores)."""
    x, y = np.asarray(release_x, dtype=np.float32), np.asarray(release_y)
    return {
        name: factory(fs=fs, seed=seed, progress=False, logger=False).fit(x, y)
        for name, factory in factories.items()
    }


def person_scores(
    cand: Candidates,
    space: FeatureSpace,
    release_x: np.ndarray,
    auditor: Posteriors,
    students: Mapping[str, Student],
    release_features: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every score of the module docstring, one value per person of `cand.persons`
    (`students`: `fit_attack_students` on this release; `release_features`: the release's
    `window_features`, when the caller has them)."""
    x = np.asarray(release_x, dtype=np.float32)
    feats = space(x) if release_features is None else space.standardized(release_features)
    post = auditor(x)
    slot = cand.slot
    early = np.flatnonzero(cand.early)
    scores: dict[str, np.ndarray] = {
        "auditor_mass": post.mean(0),
        "auditor_top1": _share(cand, post.argmax(1)),
    }
    for view, (ref, query) in {
        "raw": (cand.x, x),
        "features": (space.candidates, feats),
    }.items():
        nearest = knn(RowView(ref, early), query, 1)[1][:, 0]
        scores[f"nn_{view}"] = _share(cand, slot[early][nearest])
        log_d = _log_distance(knn(query, ref, 1)[0][:, 0])
        scores[f"dist_{view}"] = -cand.per_person_mean(log_d)
        scores[f"dist_{view}_min"] = -cand.per_person_min(log_d)
    for name, student in students.items():
        proba = np.concatenate(
            [
                student.predict_proba(cand.x[i : i + READ_ROWS])
                for i in range(0, len(cand.y), READ_ROWS)
            ]
        )
        ce = -np.log(np.clip(proba[np.arange(len(cand.y)), cand.y], 1e-7, 1.0))
        scores[f"loss/{name}"] = -cand.per_person_mean(ce)
    return scores


def attack_student_factories(nodes: Mapping[str, Any] | None) -> dict[str, Callable[..., Student]]:
    """`privacy.attack_students` (Hydra partials of `Student`) as factories."""
    from stimuli.students.fit import student_factories

    return student_factories(nodes)
