"""Train/val/test splits that hold out whole people."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "val", "test")
N_DRAWS = 256  # random person sets tried per held-out split


def _hold_out(
    persons: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """About `fraction` of the people, stratified on the apnea label; returns (rest, held) indices.

    Of `N_DRAWS` random sets of people (drawn with `seed`), the one whose apnea fraction is
    closest to everyone's. (scikit-learn's StratifiedGroupKFold sorts people deterministically and
    its shuffle only breaks ties, so there every seed gave the same split.)
    """
    groups, inverse = np.unique(persons, return_inverse=True)
    n_held = int(np.clip(round(fraction * len(groups)), 1, len(groups) - 1))
    windows = np.bincount(inverse, minlength=len(groups))
    apnea = np.bincount(inverse, weights=y, minlength=len(groups))
    rng = np.random.default_rng(seed)
    draws = rng.permuted(np.tile(np.arange(len(groups)), (N_DRAWS, 1)), axis=1)[:, :n_held]
    burden = apnea[draws].sum(axis=1) / windows[draws].sum(axis=1)
    best = draws[np.argmin(np.abs(burden - apnea.sum() / windows.sum()))]
    held = np.isin(inverse, best)
    return np.flatnonzero(~held), np.flatnonzero(held)


def split_by_person(
    persons: np.ndarray,
    y: np.ndarray,
    *,
    test: float = 0.25,
    val: float = 0.15,
    seed: int = 0,
    test_persons: Sequence[str] | None = None,
    val_persons: Sequence[str] | None = None,
) -> dict[str, list[str]]:
    """Persons of each split. Fractions are of all persons; explicit lists override them.

    Stratified so each held-out split's apnea burden is close to the cohort's (see `_hold_out`);
    another seed draws other people.
    """
    persons = np.asarray(persons)
    y = np.asarray(y)
    everyone = sorted(set(persons.tolist()))
    result: dict[str, list[str]] = {}
    remaining = np.ones(len(persons), dtype=bool)
    for name, fraction, fixed in (("test", test, test_persons), ("val", val, val_persons)):
        if fixed:
            unknown = sorted(set(fixed) - set(everyone))
            if unknown:
                raise ValueError(f"split.{name}_persons names unknown persons {unknown}")
            chosen = sorted(set(fixed))
        else:
            idx = np.flatnonzero(remaining)
            left = sorted(set(persons[idx].tolist()))
            if len(left) < 2:  # the held-out split and train each need a person
                raise ValueError(
                    f"cannot hold out a {name} split: {len(left)} person(s) left {left} after the "
                    f"earlier splits, and train needs one too (the cohort has {len(everyone)} "
                    "person(s); nights of one person count once)"
                )
            share = fraction * len(everyone) / len(left)
            _, held = _hold_out(persons[idx], y[idx], min(share, 0.5), seed)
            chosen = sorted(set(persons[idx][held].tolist()))
        result[name] = chosen
        remaining &= ~np.isin(persons, chosen)
    result["train"] = sorted(set(persons[remaining].tolist()))
    return {k: result[k] for k in SPLITS}
