"""Attack 5: is a released window closer to a real training window than chance allows?

`share_closer_to_training` compares each stimulus's nearest training window with its nearest
held-out-person window, both drawn to the same number of windows so an anonymous release scores
about 0.5. `flagged` counts stimuli nearer to a real training window than the `percentile`th
percentile of real-to-real nearest distances (training windows to their nearest other training
window), the same threshold as the release's copy check; exact copies (within a 1e-4 fraction of the
median real-to-real distance) count even when the cohort holds duplicate windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from stimuli.data.cohort import CohortDataModule
from stimuli.privacy.neighbours import knn, nearest_other
from stimuli.privacy.real import RealWindows
from stimuli.privacy.stats import config_dict, plain, rng_for


def copy_distance(
    dm: CohortDataModule,
    stimuli_x: np.ndarray,
    cfg: Mapping[str, Any],
    seed: int,
    *,
    real: RealWindows | None = None,
    leaky_x: np.ndarray | None = None,
) -> tuple[dict, dict]:
    cfg = config_dict(cfg)
    real = real or RealWindows.for_audit(dm, cfg)
    ccfg = cfg["copy"]
    rng = rng_for(seed, "copy")
    n_ref = min(len(real.x_train), len(real.x_out))
    train_ref = real.x_train[np.sort(rng.choice(len(real.x_train), n_ref, replace=False))]
    out_ref = real.x_out[np.sort(rng.choice(len(real.x_out), n_ref, replace=False))]
    n_sample = min(len(real.x_train), int(ccfg["max_windows"]))
    sample = rng.choice(len(real.x_train), n_sample, replace=False)
    real_nn = nearest_other(real.x_train, sample)
    threshold = float(np.percentile(real_nn, float(ccfg["percentile"])))
    tol = 1e-4 * float(np.median(real_nn))
    summary: dict[str, Any] = {
        "threshold": threshold,
        "percentile": float(ccfg["percentile"]),
        "real_to_real_median": float(np.median(real_nn)),
        "reference_windows": n_ref,
    }
    details: dict[str, Any] = {"real_to_real_sample": len(sample)}
    for name, x in (("release", stimuli_x), ("leaky", leaky_x)):
        if x is None:
            continue
        nearest = knn(real.x_train, x, 1)[0][:, 0]
        d_train = knn(train_ref, x, 1)[0][:, 0]
        d_out = knn(out_ref, x, 1)[0][:, 0]
        closer = (d_train < d_out).mean() + 0.5 * (d_train == d_out).mean()
        flagged = np.flatnonzero((nearest < threshold) | (nearest <= tol))
        summary[name] = {
            "share_closer_to_training": float(closer),
            "flagged": len(flagged),
            "flagged_share": len(flagged) / len(x),
            "nearest_min": float(nearest.min()),
            "nearest_median": float(np.median(nearest)),
        }
        details[name] = {
            "flagged_indices": flagged.tolist(),
            "nearest_quantiles": np.quantile(nearest, [0, 0.01, 0.05, 0.25, 0.5]).tolist(),
            "median_ratio_train_to_held_out": float(np.median(d_train / np.maximum(d_out, 1e-12))),
        }
    return plain(summary), plain(details)
