"""The data stage with an empty window cache, then with a warm one, on the full open cohort.

    python -m bench.data_cache [--repeats 3] [--out bench/results/data_cache.json]

Times what the pipeline's data stage does (DataModule `prepare_data` + `setup` + `summary`) for
the `apnea_cnn` experiment's data config, first into an empty cache folder (reads every record
and builds the cache), then `--repeats` times from that cache. Prints a table and the ratio of
first to (median) cached time, and writes the numbers atomically to `--out`. Exits non-zero when
the data is missing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bench import machine
from stimuli.config import compose_config
from stimuli.data.recording import CohortError
from stimuli.io import write_json
from stimuli.paths import REPO_ROOT

EXPERIMENT = "apnea_cnn"
DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "data_cache.json"


def data_config(cache_dir: Path, records: list[str] | None) -> DictConfig:
    """The experiment's `data` config, resolved, with its cache under `cache_dir`."""
    overrides = [
        f"+experiment={EXPERIMENT}",
        f"paths.cache_dir='{cache_dir}'",
        f"paths.output_dir='{cache_dir}'",  # unused here; the compose API cannot resolve hydra:
    ]
    if records:
        overrides.append(f"data.records=[{','.join(records)}]")
    data = compose_config(overrides).data
    OmegaConf.resolve(data)
    return data


def data_stage(data_cfg: DictConfig) -> tuple[float, dict]:
    """Seconds for one data stage with a fresh DataModule, and its summary."""
    t = time.perf_counter()
    dm = instantiate(data_cfg, progress=False)
    dm.prepare_data()
    dm.setup()
    summary = dm.summary()
    return time.perf_counter() - t, summary


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="cached runs (default 3)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON")
    parser.add_argument("--records", help="a comma-separated subset instead of the full cohort")
    args = parser.parse_args(argv)
    records = args.records.split(",") if args.records else None

    with tempfile.TemporaryDirectory(prefix="bench-data-cache-") as tmp:
        cfg = data_config(Path(tmp), records)
        root = Path(cfg.root)
        if not root.is_dir():
            print(
                f"error: data not found at {root}. Set STIMULI_DATA to the folder holding "
                "apnea-ecg/ (or put the data at ../shared/data beside the repository).",
                file=sys.stderr,
            )
            return 2
        try:
            first_s, summary = data_stage(cfg)
            cached = [data_stage(cfg) for _ in range(args.repeats)]
        except CohortError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        if not summary["cache"]["built_now"] or any(s["cache"]["built_now"] for _, s in cached):
            print(
                "error: the first run should build the cache, the others load it", file=sys.stderr
            )
            return 1
        cache_bytes = folder_bytes(Path(summary["cache"]["path"]))

    cached_s = [s for s, _ in cached]
    median = statistics.median(cached_s) if cached_s else float("nan")
    ratio = first_s / median if cached_s else float("nan")
    rows = [("first (empty cache)", first_s)] + [
        (f"cached #{i + 1}", s) for i, s in enumerate(cached_s)
    ]
    print(
        f"data stage, {EXPERIMENT}: {summary['n_records']} records, {summary['n_persons']} "
        f"persons, {summary['n_windows']} windows x {summary['n_times']} samples "
        f"({cache_bytes / 2**20:.1f} MiB cached)"
    )
    print(f"{'run':<22}{'seconds':>10}")
    print("-" * 32)
    for name, s in rows:
        print(f"{name:<22}{s:>10.3f}")
    print("-" * 32)
    print(f"{'first / cached median':<22}{ratio:>9.1f}x")

    result = {
        "benchmark": "data_cache",
        "experiment": EXPERIMENT,
        "records": records or "all",
        "cohort": {k: summary[k] for k in ("n_records", "n_persons", "n_windows", "n_times", "fs")},
        "cache_bytes": cache_bytes,
        "first_s": round(first_s, 4),
        "cached_s": [round(s, 4) for s in cached_s],
        "cached_median_s": round(median, 4),
        "ratio_first_to_cached": round(ratio, 2),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
