"""The other-night attacker's recordings (`privacy.attacker_nights`).

The attacker may hold a different night of a suspect than the one the owner trained on. With
`attacker_nights`, every person with several nights has one (the last by record name) withheld
from the owner's whole pipeline; the auditor is trained on those nights instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stimuli.data.recording import CohortError


def withheld_nights(records: Sequence[dict], root: Path) -> list[str]:
    """The record withheld from the owner for every person with several (sorted names)."""
    nights: dict[str, list[str]] = {}
    for r in records:
        nights.setdefault(r["person"], []).append(r["record"])
    withheld = sorted(max(names) for names in nights.values() if len(names) > 1)
    if not withheld:
        raise CohortError(
            f"{root}: privacy.attacker_nights=true needs persons with several recordings, and "
            f"each of the {len(nights)} person(s) here has one. Set privacy.attacker_nights="
            "false, or use a cohort that groups nights by person."
        )
    return withheld


def owner_windows(
    records: Sequence[dict], record_index: np.ndarray, withheld: Sequence[str]
) -> np.ndarray:
    """Boolean mask of the windows the owner's pipeline sees: all but those of `withheld`."""
    names = set(withheld)
    held = np.array([r["record"] in names for r in records], dtype=bool)
    return ~held[record_index] if len(held) else np.ones(len(record_index), dtype=bool)


def attacker_summary(
    withheld: Sequence[str], window_person: np.ndarray, y: np.ndarray, indices: np.ndarray
) -> dict:
    """The datasummary block of the attacker's windows (`indices` into the cache)."""
    return {
        "records": list(withheld),
        "persons": len(np.unique(window_person[indices])),
        "windows": len(indices),
        "apnea_fraction": round(float(y[indices].mean()), 4),
    }
