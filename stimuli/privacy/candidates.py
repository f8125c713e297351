"""The persons an attacker suspects: every person of the cohort, members and non-members alike.

The anonymity criteria (`stimuli.privacy.criteria`) attack members and non-members the same way,
so they need every person's windows together: the training persons of this split (members) and
the validation and test persons (non-members, the control). Each night is cut in time as the
identity model's is: the attacker's person-ID model learns from the `early` part of every night
and its control is scored on the late part.

The other-night attacker (`privacy.attacker_nights`) holds instead the night the owner never saw
of every person with several (`Candidates.other_night`): its model learns that whole night and is
scored on the owner's nights of the same persons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stimuli.data.cohort import CohortDataModule
from stimuli.data.datasets import WindowView
from stimuli.data.windows import early_in_night
from stimuli.students.features import feature_names, window_features

SPLITS = ("train", "val", "test")


@dataclass
class Candidates:
    """Windows of every person with their labels, persons, membership and time split.

    `x` reads the windows from the cache's memory map on demand (a `WindowView`; an array in
    tests): the attacks read it in chunks, so the cohort is never held in memory whole.
    `person` holds global person indices; `persons` the sorted distinct ones, and per-person
    arrays (`is_member`) follow that order. `slot[i]` is the position of window i's person in
    `persons`.
    """

    x: np.ndarray | WindowView  # (N, n_chans, n_times), normalized as the teacher saw them
    y: np.ndarray  # apnea labels
    person: np.ndarray
    member: np.ndarray  # window of a training person
    early: np.ndarray  # window from the early part of its night (the attacker's own recordings)
    fs: float
    _features: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_datamodule(cls, dm: CohortDataModule, holdout: float) -> Candidates:
        """The train, val and test windows, in that order (the splits share one normalization)."""
        dm.setup()
        parts = [dm.datasets[s] for s in SPLITS]
        rows = np.concatenate([ds.indices for ds in parts])
        record, segment = (
            np.asarray(a[rows]) for a in (dm.cache.record_index, dm.cache.segment_index)
        )
        return cls(
            x=WindowView(parts[0], rows),
            y=np.concatenate([np.asarray(ds.labels(), dtype=np.int64) for ds in parts]),
            person=np.asarray(dm.window_person[rows], dtype=np.int64),
            member=np.concatenate([np.full(len(ds), s == "train") for s, ds in zip(SPLITS, parts)]),
            early=early_in_night(record, segment, holdout),
            fs=float(dm.fs),
        )

    @classmethod
    def other_night(cls, dm: CohortDataModule) -> Candidates:
        """The other-night attacker's recordings (`dm.datasets["attacker"]`, the nights withheld
        from the owner's pipeline), one per person with several nights; a person is a member when
        the owner trained on their other nights in this split. All of it is `early`: the
        attacker learns from the whole night."""
        dm.setup()
        if "attacker" not in dm.datasets:
            raise ValueError("the other-night attacker needs privacy.attacker_nights=true")
        ds = dm.datasets["attacker"]
        p = np.asarray(ds.person[ds.indices], dtype=np.int64)
        train = [dm.person_ids.index(q) for q in dm.split_persons["train"]]
        return cls(
            x=ds.view(),
            y=np.asarray(ds.labels(), dtype=np.int64),
            person=p,
            member=np.isin(p, train),
            early=np.ones(len(p), dtype=bool),
            fs=float(dm.fs),
        )

    @property
    def persons(self) -> np.ndarray:
        return np.unique(self.person)

    def early_rows(self) -> np.ndarray:
        """The rows of the `early` windows person by person, each person's in cohort order: the
        same windows in the same order whatever the person split (the rows themselves come
        grouped by split), so the one auditor an audit's splits share is the same model
        whichever split's job trains it."""
        rows = np.flatnonzero(self.early)
        return rows[np.argsort(self.person[rows], kind="stable")]

    @property
    def slot(self) -> np.ndarray:
        return np.searchsorted(self.persons, self.person)

    @property
    def is_member(self) -> np.ndarray:
        """Per person (in `persons` order): a training person of this split."""
        out = np.zeros(len(self.persons), dtype=bool)
        out[self.slot[self.member]] = True
        return out

    @property
    def n_persons(self) -> int:
        return len(self.persons)

    @property
    def feature_names(self) -> list[str]:
        return feature_names(self.x.shape[1], self.fs)

    @property
    def features(self) -> np.ndarray:
        """The documented window features (`stimuli.students.features`), computed once."""
        if self._features is None:
            self._features = window_features(self.x, self.fs)
        return self._features

    def per_person_mean(self, values: np.ndarray) -> np.ndarray:
        counts = np.bincount(self.slot, minlength=self.n_persons)
        return np.bincount(self.slot, weights=values, minlength=self.n_persons) / counts

    def per_person_min(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.n_persons, np.inf)
        np.minimum.at(out, self.slot, values)
        return out
