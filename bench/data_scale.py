"""The data stage on cohorts 1x, 5x and 20x the open one: seconds and peak memory per size.

    python -m bench.data_scale [--sizes 1,5,20] [--num-workers 0] [--out PATH]

Builds, in a temporary folder, copies of the 34 Apnea-ECG learning-set records under new record
names (`.hea` with the name rewritten, `.apn` and `.qrs` byte for byte) and an
`additional-information.txt` whose rows are the originals' with the weight column tagged by the
copy (`102` -> `102.07`): nights of one person stay grouped within a copy, and no person spans two
copies, so an `xK` cohort has 34K records of 24K persons and K times the windows. For each size a
fresh subprocess runs the data stage of the `apnea_cnn` experiment (`prepare_data` + `setup` +
`summary`) into an empty cache; the parent takes that process tree's peak RSS from `wait4`, so
each size is measured on its own. Writes seconds, peak RSS, records, persons and windows per size
and the ratios time(xN)/(N/1 * time(x1)) and rss(xN)/rss(x1) for the largest size N, with their
targets (1.2 and 1.5), atomically to `--out`. Exits non-zero when the data is missing or a size
does not scale the cohort exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import machine

EXPERIMENT = "apnea_cnn"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "data_scale.json"
ORIGINAL = re.compile(r"[a-c]\d\d")  # the learning set's record names (a01…c10)
TARGETS = {"time_ratio": 1.2, "rss_ratio": 1.5}


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def new_name(i: int) -> str:
    """The i-th copied record: a00…a99, b00…, matching Apnea-ECG's `[a-z]\\d\\d`."""
    if i >= 26 * 100:
        raise ValueError("at most 2600 records fit the `[a-z]\\d\\d` names")
    return f"{chr(ord('a') + i // 100)}{i % 100:02d}"


def make_cohort(src: Path, dst: Path, copies: int) -> int:
    """`copies` copies of the learning set in `dst`, each with its own persons; the record count."""
    table = {}
    for line in (src / "additional-information_learning-set.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 12 and ORIGINAL.fullmatch(parts[0]):
            table[parts[0]] = parts[:12]
    originals = sorted(n for n in table if (src / f"{n}.apn").is_file())
    dst.mkdir(parents=True)
    rows = ["Synthetic copies of the Apnea-ECG learning set (bench.data_scale)."]
    for c in range(copies):
        for j, old in enumerate(originals):
            new = new_name(c * len(originals) + j)
            header = (src / f"{old}.hea").read_bytes().replace(old.encode(), new.encode())
            (dst / f"{new}.hea").write_bytes(header)
            for suffix in (".apn", ".qrs"):
                (dst / f"{new}{suffix}").write_bytes((src / f"{old}{suffix}").read_bytes())
            row = table[old]
            rows.append("\t".join([new, *row[1:11], f"{row[11]}.{c:02d}"]))
    (dst / "additional-information.txt").write_text("\n".join(rows) + "\n")
    return copies * len(originals)


def data_config(root: Path, cache_dir: Path, num_workers: int):
    from omegaconf import OmegaConf

    from stimuli.config import compose_config

    overrides = [
        f"+experiment={EXPERIMENT}",
        f"data.root='{root}'",
        f"data.num_workers={num_workers}",
        f"paths.cache_dir='{cache_dir}'",
        f"paths.output_dir='{cache_dir}'",  # unused; the compose API cannot resolve hydra:
    ]
    data = compose_config(overrides).data
    OmegaConf.resolve(data)
    return data


def child(root: Path, cache_dir: Path, num_workers: int) -> dict:
    """One data stage into an empty cache, in this (fresh) process."""
    from hydra.utils import instantiate

    import stimuli.data.apnea_ecg  # noqa: F401  (import torch & co. before the baseline)

    cfg = data_config(root, cache_dir, num_workers)

    def peak() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    after_imports = peak()
    t = time.perf_counter()
    dm = instantiate(cfg, progress=False)
    dm.prepare_data()
    prepare_s = time.perf_counter() - t
    after_prepare = peak()
    dm.setup()
    summary = dm.summary()
    seconds = time.perf_counter() - t
    if num_workers > 1:  # reap the reading processes, so their peak is counted below
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    cache = Path(summary["cache"]["path"])
    return {
        "built_now": summary["cache"]["built_now"],
        "records": summary["n_records"],
        "persons": summary["n_persons"],
        "windows": summary["n_windows"],
        "seconds": round(seconds, 3),
        "prepare_s": round(prepare_s, 3),
        "rss_after_imports_mib": mib(after_imports),
        "rss_after_prepare_mib": mib(after_prepare),
        "rss_main_mib": mib(peak()),
        "rss_workers_mib": mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
        "cache_mib": round(sum(p.stat().st_size for p in cache.iterdir()) / 2**20, 1),
    }


def run_size(root: Path, cache_dir: Path, num_workers: int) -> dict:
    """`child` in a fresh interpreter; adds the peak RSS of its whole process tree."""
    cmd = [sys.executable, "-m", "bench.data_scale", "--child", str(root), str(cache_dir)]
    cmd += ["--num-workers", str(num_workers)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"the data stage at {root.name} failed (exit {proc.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": mib(usage.ru_maxrss)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5,20", help="copies of the cohort (default 1,5,20)")
    parser.add_argument("--num-workers", type=int, default=0, help="data.num_workers (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.num_workers)))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",")})

    from stimuli.io import write_json
    from stimuli.paths import data_dir

    src = Path(data_dir()) / "apnea-ecg"
    if not (src / "additional-information_learning-set.txt").is_file():
        print(
            f"error: Apnea-ECG not found at {src}. Set STIMULI_DATA to the folder holding "
            "apnea-ecg/ (or put the data at ../shared/data beside the repository).",
            file=sys.stderr,
        )
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-data-scale-") as tmp:
        for k in sizes:
            root = Path(tmp) / f"x{k}" / "apnea-ecg"
            n = make_cohort(src, root, k)
            row = {"scale": k, **run_size(root, Path(tmp) / f"cache-x{k}", args.num_workers)}
            rows.append(row)
            print(
                f"x{k}: {n} records, {row['windows']} windows, {row['seconds']:.1f} s, "
                f"peak {row['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            for done in (root.parent, Path(tmp) / f"cache-x{k}"):  # keep the disk use to one size
                shutil.rmtree(done)
    first, last = rows[0], rows[-1]
    factor = last["scale"] / first["scale"]
    bad = [
        r["scale"]
        for r in rows
        if not r["built_now"]
        or r["windows"] != first["windows"] * r["scale"] / first["scale"]
        or r["persons"] != first["persons"] * r["scale"] / first["scale"]
    ]
    time_ratio = last["seconds"] / (factor * first["seconds"])
    rss_ratio = last["peak_rss_mib"] / first["peak_rss_mib"]
    print(
        f"{'size':>5}{'records':>9}{'windows':>9}{'seconds':>9}{'s/record':>10}"
        f"{'peak MiB':>10}{'imports':>9}{'cache MiB':>11}"
    )
    for r in rows:
        print(
            f"{'x' + str(r['scale']):>5}{r['records']:>9}{r['windows']:>9}{r['seconds']:>9.1f}"
            f"{r['seconds'] / r['records']:>10.3f}{r['peak_rss_mib']:>10.0f}"
            f"{r['rss_after_imports_mib']:>9.0f}{r['cache_mib']:>11.0f}"
        )
    tag = f"x{last['scale']}/x{first['scale']}"
    print(f"time {tag} / {factor:g}: {time_ratio:.3f} (target <= {TARGETS['time_ratio']})")
    print(f"peak RSS {tag}: {rss_ratio:.3f} (target <= {TARGETS['rss_ratio']})")
    result = {
        "benchmark": "data_scale",
        "experiment": EXPERIMENT,
        "num_workers": args.num_workers,
        "sizes": rows,
        "time_ratio": round(time_ratio, 3),
        "rss_ratio": round(rss_ratio, 3),
        "ratios_of": tag,
        "targets": TARGETS,
        "met": {
            "time_ratio": time_ratio <= TARGETS["time_ratio"],
            "rss_ratio": rss_ratio <= TARGETS["rss_ratio"],
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")
    if bad:
        print(f"error: sizes {bad} did not build or did not scale the cohort", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
