"""The real windows every attack compares a release against, read once per audit."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from stimuli.data.cohort import CohortDataModule
from stimuli.identity import identity_arrays
from stimuli.privacy.neighbours import EmbeddingSpace
from stimuli.privacy.stats import rng_for


@dataclass
class RealWindows:
    """Training persons' windows (persons 0…P-1, time-split like the identity model) and the
    held-out (val + test) persons' windows, with global person indices for both."""

    x_train: np.ndarray
    y_train: np.ndarray
    label: np.ndarray  # training person 0…P-1
    person_train: np.ndarray  # global person index
    fit: np.ndarray  # early part of each night: what the auditor learns from
    held: np.ndarray  # late part of each night: what scores it
    n_persons: int
    x_out: np.ndarray
    y_out: np.ndarray
    person_out: np.ndarray
    _spaces: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_audit(cls, dm: CohortDataModule, cfg: dict) -> RealWindows:
        """Split as the `privacy` config's auditor is: `cfg["auditor"]["holdout"]`."""
        return cls.from_datamodule(dm, float(cfg["auditor"]["holdout"]))

    @classmethod
    def from_datamodule(cls, dm: CohortDataModule, holdout: float) -> RealWindows:
        ids = identity_arrays(dm, holdout)
        train = dm.datasets["train"]
        outs = [dm.datasets[s].arrays() for s in ("val", "test")]
        return cls(
            x_train=ids["x"],
            y_train=np.asarray(train.y[train.indices], dtype=np.int64),
            label=ids["y"],
            person_train=np.asarray(train.person[train.indices], dtype=np.int64),
            fit=ids["fit"],
            held=ids["held"],
            n_persons=int(ids["n_persons"]),
            x_out=np.concatenate([o[0] for o in outs]),
            y_out=np.concatenate([o[1] for o in outs]).astype(np.int64),
            person_out=np.concatenate([o[2] for o in outs]).astype(np.int64),
        )

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.label, minlength=self.n_persons)

    def embedded(self, model: torch.nn.Module) -> tuple[EmbeddingSpace, np.ndarray, np.ndarray]:
        """`model`'s standardized embedding space and the training and held-out persons' windows
        in it (computed once per model)."""
        if id(model) not in self._spaces:
            space = EmbeddingSpace(model, self.x_train)
            self._spaces[id(model)] = (model, space, space.fitted, space(self.x_out))
        return self._spaces[id(model)][1:]

    def leaky_release(self, n: int, seed: int) -> np.ndarray:
        """The deliberately leaky control: `n` real training windows released as if stimuli."""
        rng = rng_for(seed, "leaky")
        idx = np.sort(rng.choice(len(self.x_train), min(n, len(self.x_train)), replace=False))
        return self.x_train[idx]

    def balanced_leaky_release(self, n: int, seed: int) -> np.ndarray:
        """About `n` real training windows, as many of each training person as the person with
        the fewest windows allows: the release whose attribution is as flat as data can make it,
        while every window is a real window of a training person."""
        rng = rng_for(seed, "leaky-balanced")
        per_person = max(1, min(n // self.n_persons, int(self.train_counts.min())))
        idx = [
            rng.choice(np.flatnonzero(self.label == p), per_person, replace=False)
            for p in range(self.n_persons)
        ]
        return self.x_train[np.sort(np.concatenate(idx))]
