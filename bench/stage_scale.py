"""Every stage of a run (teacher, identity model, synthesis, students, evaluation, privacy audit,
report, release with its copy check) on cohorts 1x and 5x the open one: peak memory per stage,
so a stage that loads every window at once shows.

    python -m bench.stage_scale [--sizes 1,5] [--out PATH]

For each size, the `bench.data_scale` copies of the learning set (new records and persons, K
times the windows) and a fresh subprocess running `python -m stimuli.run +experiment=apnea_cnn`
with every stage, scaled down in steps (one teacher epoch, few synthesis,
student and auditor steps, small forests: memory, not quality, is measured) into an empty
cache. The run's `results.json` gives the process's peak RSS after each stage
(`peak_rss_mib`); the parent takes the whole process tree's peak from `wait4`. RSS counts the
pages of the window cache's memory map that were read (file-backed, shared, dropped by the
kernel under pressure: the cache, not a copy), so the parent also samples the tree's anonymous
memory (`RssAnon` of every process, summed, every 50 ms): what the run holds in its own arrays
and tensors, which grows with the cohort when a stage loads every window. Writes both per size
and the ratios x5/x1 with their target (1.5: memory stays flat while the windows grow 5x)
atomically to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.data_scale import make_cohort, mib

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "stage_scale.json"
TARGET = 1.5
SMALL = [  # memory, not quality: every stage runs its real code on every window, briefly
    "+experiment=apnea_cnn",
    "logger=none",
    "quiet=true",
    "stages=[data,teacher,synthesize,students,evaluate,privacy,release]",
    "teacher.max_epochs=1",
    "identity.steps=50",
    "synthesis.n=128",
    "synthesis.shard_size=64",
    "synthesis.steps=5",
    "soft_labels.teachers=1",
    "student_defaults.steps=20",
    "students.random_forest.n_estimators=20",
    "students.gboost.max_iter=20",
    "privacy.auditor.steps=50",
    "privacy.attack_students.mlp.steps=50",
    "privacy.n_bootstrap=100",
    "privacy.dcr.n_bootstrap=50",
    "privacy.anonymeter.n_attacks=500",
]


def process_tree(root: int) -> list[int]:
    """`root` and its descendants (from every process's parent in /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        tree.append(pid := todo.pop())
        todo += children.get(pid, [])
    return tree


def anonymous_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class AnonymousPeak(threading.Thread):
    """Samples the summed `RssAnon` of a process tree until the root ends; `peak_mib`."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_kib = pid, every_s, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            now = sum(anonymous_kib(p) for p in process_tree(self.pid))
            self.peak_kib = max(self.peak_kib, now)

    @property
    def peak_mib(self) -> float:
        return round(self.peak_kib / 1024, 1)


def run_size(root: Path, work: Path) -> dict:
    """The small run on cohort `root` in a fresh interpreter: per-stage peaks and the tree's."""
    out = work / "run"
    cmd = [
        sys.executable,
        "-m",
        "stimuli.run",
        *SMALL,
        f"data.root='{root}'",
        f"paths.cache_dir='{work / 'cache'}'",
        f"hydra.run.dir='{out}'",
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    sampler = AnonymousPeak(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the run on {root.parent.name} failed; see {out}/run.log")
    results = json.loads((out / "results.json").read_text())
    return {
        "windows": results["data"]["n_windows"],
        "persons": results["data"]["n_persons"],
        "seconds": round(seconds, 1),
        "stage_seconds": results["timing"],
        "peak_rss_after_stage_mib": results["peak_rss_mib"],
        "peak_rss_mib": mib(usage.ru_maxrss),
        "peak_anonymous_mib": sampler.peak_mib,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,5", help="copies of the cohort (default 1,5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})

    from stimuli.io import write_json
    from stimuli.paths import data_dir

    src = Path(data_dir()) / "apnea-ecg"
    if not (src / "additional-information_learning-set.txt").is_file():
        print(f"error: Apnea-ECG not found at {src}; set STIMULI_DATA", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-stage-scale-") as tmp:
        for k in sizes:
            root = Path(tmp) / f"x{k}" / "apnea-ecg"
            make_cohort(src, root, k)
            row = {"scale": k, **run_size(root, Path(tmp) / f"work-x{k}")}
            rows.append(row)
            stages = ", ".join(f"{s} {v:.0f}" for s, v in row["peak_rss_after_stage_mib"].items())
            print(
                f"x{k}: {row['windows']} windows, peak {row['peak_rss_mib']:.0f} MiB ({stages}), "
                f"anonymous {row['peak_anonymous_mib']:.0f} MiB"
            )
    ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    anon_ratio = rows[-1]["peak_anonymous_mib"] / rows[0]["peak_anonymous_mib"]
    tag = f"x{rows[-1]['scale']}/x{rows[0]['scale']}"
    print(f"peak RSS {tag}: {ratio:.3f}, anonymous {anon_ratio:.3f} (target <= {TARGET})")
    write_json(
        args.out,
        {
            "benchmark": "stage_scale",
            "command": "python -m bench.stage_scale " + " ".join(argv or sys.argv[1:]),
            "overrides": SMALL,
            "sizes": rows,
            "rss_ratio": round(ratio, 3),
            "anonymous_ratio": round(anon_ratio, 3),
            "ratio_of": tag,
            "target": TARGET,
            "met": ratio <= TARGET,
            "anonymous_met": anon_ratio <= TARGET,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
