"""The membership attack's distance scores beside a placebo release, pooled over person splits.

    python -m experiments.membership_baselines SWEEP_DIR [MORE_DIRS ...] [--out RESULTS_JSON]

A distance score can sort members from non-members because of the space it is measured in, not
because of the release (`stimuli.privacy.membership`, baselines). This recomputes the distance
scores of each finished job of `+experiment=person_splits` (its teacher, stimuli and privacy
config, all from the cache; no students, whose scores are in privacy.json already) together with
the placebo release's, and pools each over the splits as `experiments.person_splits` does. Each
job's scores are kept in its folder (`membership_baselines.json`), so the command can run again
as more jobs finish. Rows go to `experiments/results/membership_baselines.json`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments.person_splits import job_config, load_jobs, pooled_membership
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.pipeline import open_job
from stimuli.privacy.membership import membership_inference
from stimuli.privacy.stats import plain

OUT = REPO_ROOT / "experiments" / "results" / "membership_baselines.json"


def job_scores(job_dir: Path, tmp: Path) -> list[dict]:
    """Per person of the job: member or not, and every distance score with its placebo twin."""
    done_file = job_dir / "membership_baselines.json"
    if done_file.is_file():
        return read_json(done_file)
    cfg = job_config(job_dir, tmp)
    job = open_job(cfg)
    pcfg = OmegaConf.to_container(cfg.privacy, resolve=True)
    _, details = membership_inference(
        job.get("dm"), job.get("teacher"), job.get("stimuli")["x"], {}, pcfg, int(cfg.seed)
    )
    write_json(done_file, plain(details["persons"]))
    return details["persons"]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.membership_baselines")
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    jobs = load_jobs(args.sweeps)
    if not jobs:
        raise SystemExit(f"{args.sweeps}: no finished jobs (no */results.json with privacy.json)")
    with tempfile.TemporaryDirectory() as tmp:
        for job in jobs:
            job["persons"] = job_scores(job["dir"], Path(tmp))
    pooled = pooled_membership(jobs)
    names = sorted(n for n in pooled if n.startswith("knn_"))
    rows = [{"score": n, "release": pooled[n], "placebo": pooled[f"placebo_{n}"]} for n in names]

    def cell(res: dict) -> str:
        return f"{res['auc']:.3f} [{res['ci_low']:.2f}, {res['ci_high']:.2f}]"

    print(
        "| score | release, pooled [95 % CI] | placebo release, pooled "
        "| per split: release / placebo |"
    )
    print("|---|---|---|---|")
    for row in rows:
        per_split = ", ".join(
            f"{a:.2f} / {b:.2f}"
            for a, b in zip(row["release"]["split_aucs"], row["placebo"]["split_aucs"])
        )
        print(f"| {row['score']} | {cell(row['release'])} | {cell(row['placebo'])} | {per_split} |")
    write_json(args.out, plain({"split_seeds": [j["split_seed"] for j in jobs], "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1:])
