"""The data owner's summary of a cohort: records, persons, windows, labels and splits.

It goes into the run's results and, reduced to counts, into the datacard; record names stay in
the owner's results only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from stimuli.data.attacker_nights import attacker_summary
from stimuli.data.splits import SPLITS

if TYPE_CHECKING:
    from stimuli.data.cohort import CohortDataModule


def cohort_summary(dm: CohortDataModule) -> dict:
    """The summary of a set-up DataModule `dm`."""
    cache = dm.cache
    records = cache.meta["records"]
    y = np.asarray(cache.y)
    splits = {}
    for s in SPLITS:
        ds = dm.datasets[s]
        ys = y[ds.indices]
        splits[s] = {
            "persons": len(dm.split_persons[s]),
            "records": sorted(
                r["record"]
                for r in records
                if r["person"] in dm.split_persons[s] and r["record"] not in dm.withheld_records
            ),
            "windows": len(ds),
            "apnea_fraction": round(float(ys.mean()), 4),
        }
    return {
        "n_records": len(records),
        "n_persons": len(dm.person_ids),
        "n_labelled": sum(r["labelled"] for r in records),
        "n_windows": len(y),
        "apnea_fraction": round(float(y.mean()), 4),
        "channels": dm.channels,
        "fs": dm.fs,
        "window_s": dm.n_times / dm.fs,
        "n_times": dm.n_times,
        "normalize": dm.normalize,
        "dropped": {
            k: sum(r[f"dropped_{k}"] for r in records) for k in ("edge", "invalid", "flat")
        },
        "splits": splits,
        **(
            {
                "attacker": attacker_summary(
                    dm.withheld_records,
                    dm.window_person,
                    y,
                    dm.datasets["attacker"].indices,
                )
            }
            if dm.attacker_nights
            else {}
        ),
        "cache": {"path": str(cache.path), "built_now": dm.built_cache},
    }
