"""Stage `release`: the bundle's arrays and datacard from explicit inputs, leak-checked, written.

Takes arrays, models and settings; never the runner.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from stimuli.config import plain_config
from stimuli.release.bundle import bundle_files, verify_bundle, write_release
from stimuli.release.datacard import make_datacard
from stimuli.release.forbidden import ForbiddenInfo, forbidden_info

log = logging.getLogger(__name__)


def releases_soft_labels(cfg: Any) -> bool:
    """Whether the bundle carries the stimuli's soft labels (`release.soft_labels`)."""
    return bool((plain_config(cfg.get("release")) or {}).get("soft_labels", True))


def release_arrays(
    stimuli_x: np.ndarray, labels: np.ndarray, soft: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The bundle's arrays: `x`, `labels` and, when given, the soft labels `soft`."""
    arrays = {
        "x": np.ascontiguousarray(stimuli_x, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.int64),
    }
    if soft is not None:
        arrays["soft"] = np.ascontiguousarray(soft, dtype=np.float32)
    return arrays


def forbidden_for_release(
    dm: Any,
    models: Mapping[str, nn.Module],
    *,
    extra_paths: Sequence[Path],
    copy_cfg: Mapping[str, Any],
    seed: int,
) -> ForbiddenInfo:
    """What a bundle must not carry: the cohort of `dm`, the `models`' parameters and BatchNorm
    statistics, the given paths; `copy_cfg` is `privacy.copy` (the copy-distance threshold)."""
    from stimuli.paths import REPO_ROOT

    return forbidden_info(
        dm,
        dict(models),
        extra_paths=[*extra_paths, Path.home(), REPO_ROOT],
        copy_sample=int(copy_cfg.get("max_windows", 3000)),
        copy_percentile=float(copy_cfg.get("percentile", 1.0)),
        seed=int(seed),
    )


def write_checked_release(
    dest: Path, arrays: Mapping[str, np.ndarray], card: Mapping[str, Any], forbidden: ForbiddenInfo
) -> dict:
    """Check and write the bundle to `dest` (nothing is written when a leak is found); returns
    the `release` block of results.json."""
    dest = write_release(dest, bundle_files(arrays, card), forbidden)
    sums = verify_bundle(dest)
    log.info("release: %d stimuli written to %s", len(arrays["x"]), dest)
    return {
        "path": str(dest),
        "n": len(arrays["x"]),
        "soft_labels": "soft" in arrays,
        "sha256": sums,
        "copy_check": dict(forbidden.copy_stats),
    }


__all__ = [
    "forbidden_for_release",
    "make_datacard",
    "release_arrays",
    "releases_soft_labels",
    "write_checked_release",
]
