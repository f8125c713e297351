"""Utility of the stimuli: the `apnea_cnn` experiment end to end, timed, with its table.

    python -m bench.utility [hydra overrides ...]

Runs the real pipeline (`stimuli.run` with `+experiment=apnea_cnn` and the default config, or the
overrides given) in a fresh cache so every stage is computed, then writes the teacher's test
metrics, each student's real / stimuli / distilled numbers and gaps, the stimulus count, the
privacy audit's summary and the seconds per stage to `bench/results/utility.json`, and prints
the table.
"""

from __future__ import annotations

import sys
import tempfile
import time

from stimuli.config import compose_config
from stimuli.io import write_json
from stimuli.paths import REPO_ROOT
from stimuli.pipeline import format_table, run_pipeline


def main(overrides: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(
            [
                "+experiment=apnea_cnn",
                "quiet=true",
                f"paths.output_dir={tmp}/run",
                f"paths.cache_dir={tmp}/cache",
                *overrides,
            ]
        )
        t = time.perf_counter()
        results = run_pipeline(cfg)
        total = time.perf_counter() - t
    summary = {
        "overrides": overrides,
        "total_seconds": round(total, 1),
        "timing": results["timing"],
        "teacher": results["teacher"],
        "identity_model": results["identity_model"],
        "stimuli": results["stimuli"],
        "students": results["students"],
        "privacy": results.get("privacy"),
    }
    write_json(REPO_ROOT / "bench" / "results" / "utility.json", summary)
    print(format_table(results))
    print(f"total {total:.0f} s; per stage {results['timing']}")


if __name__ == "__main__":
    main(sys.argv[1:])
