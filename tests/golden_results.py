"""The tiny run's numbers recorded before the pipeline became stage functions (issue 14), and
the comparison that keeps them: every number of results.json except times, paths and hashes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "golden" / "tiny_results.json"
# Wall-clock values, paths and hashes of files whose bytes legitimately change (the datacard
# gained settings), not numbers the mechanism computes.
VOLATILE = {"timing", "peak_rss_mib", "seconds", "path", "sha256", "built_now"}


def comparable(results: Any) -> Any:
    """`results` without the volatile entries (any depth)."""
    if isinstance(results, dict):
        return {k: comparable(v) for k, v in results.items() if k not in VOLATILE}
    if isinstance(results, list | tuple):
        return [comparable(v) for v in results]
    return results


def differences(got: Any, want: Any, where: str = "", rel: float = 1e-6) -> list[str]:
    """Where `got` differs from `want` (numbers within `rel`, NaN equal to NaN)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: {type(got).__name__} instead of a mapping"]
        out = [f"{where}.{k}: missing" for k in want if k not in got]
        for k in want:
            if k in got:
                out += differences(got[k], want[k], f"{where}.{k}", rel)
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got!r:.80} instead of {want!r:.80}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want))
            for d in differences(g, w, f"{where}[{i}]", rel)
        ]
    if isinstance(want, float) and isinstance(got, int | float):
        if math.isnan(want) and math.isnan(got):
            return []
        if math.isclose(got, want, rel_tol=rel, abs_tol=rel):
            return []
    elif got == want:
        return []
    return [f"{where}: {got!r} instead of {want!r}"]


def load_golden() -> dict:
    return json.loads(GOLDEN.read_text())
