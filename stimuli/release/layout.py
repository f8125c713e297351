"""File names and fixed stamps of a bundle (`stimuli-release-v1`)."""

from __future__ import annotations

from typing import Any

import numpy as np

FORMAT = "stimuli-release-v1"
NPZ = "stimuli.npz"
DATACARD = "datacard.json"
CHECKSUMS = "SHA256SUMS"
BUNDLE_FILES = (NPZ, DATACARD)
ARRAY_KEYS = ("x", "labels", "soft")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: no date of making
FIXED_MTIME = 315532800  # 1980-01-01 00:00:00 UTC, for the files on disk


def json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
