"""Stage `release`: the bundle a data owner hands to third parties, and the leak check before it.

A bundle is a folder of three files:

- `stimuli.npz`: float32 `x (N, C, T)`, int64 `labels (N,)` and, with `release.soft_labels`,
  float32 `soft (N, K)` (the teacher's probabilities on the stimuli). Written as a zip whose
  entries carry a fixed 1980-01-01 timestamp, so the file holds no date and is reproducible.
- `datacard.json`: shapes, channels, sampling rate, window length, label names and counts, how the
  stimuli were made (whitelisted synthesis settings and teacher architecture) and, when the run
  measured it, the utility summary (teacher and students on the owner's test persons).
- `SHA256SUMS`: `sha256sum -c` compatible.

Nothing of the cohort reaches the bundle by construction (whitelists), and `check_leaks` scans
every text and array the bundle would contain before anything is written: record and file names,
person ids, EDF/WFDB header fields, dates, paths, state-dict-like keys, the teacher's (and
identity model's) parameters and BatchNorm statistics, and stimuli that are near copies of real
windows. Any finding raises `LeakError` and nothing is written. The folder is written atomically:
built beside `release/`, then renamed into place.
"""

from __future__ import annotations

from stimuli.release.bundle import (
    BundleError,
    bundle_files,
    checksums,
    npz_bytes,
    read_bundle,
    verify_bundle,
    write_release,
)
from stimuli.release.datacard import make_datacard, utility_summary, whitelisted
from stimuli.release.forbidden import (
    ForbiddenInfo,
    edf_header_terms,
    forbidden_info,
    state_arrays,
    wfdb_header_terms,
)
from stimuli.release.layout import ARRAY_KEYS, CHECKSUMS, DATACARD, FORMAT, NPZ, ZIP_DATE
from stimuli.release.leaks import LeakError, check_leaks
from stimuli.release.patterns import DATE_RE
from stimuli.release.stage import (
    forbidden_for_release,
    release_arrays,
    releases_soft_labels,
    write_checked_release,
)

__all__ = [
    "ARRAY_KEYS",
    "CHECKSUMS",
    "DATACARD",
    "DATE_RE",
    "FORMAT",
    "NPZ",
    "ZIP_DATE",
    "BundleError",
    "ForbiddenInfo",
    "LeakError",
    "bundle_files",
    "check_leaks",
    "checksums",
    "edf_header_terms",
    "forbidden_for_release",
    "forbidden_info",
    "make_datacard",
    "npz_bytes",
    "read_bundle",
    "release_arrays",
    "releases_soft_labels",
    "state_arrays",
    "utility_summary",
    "verify_bundle",
    "wfdb_header_terms",
    "whitelisted",
    "write_checked_release",
    "write_release",
]
