"""Tables of `+experiment=person_splits`: the default run on several person splits.

    python -m experiments.person_splits SWEEP_DIR [MORE_DIRS ...] [--out RESULTS_JSON]

Reads each job's results.json and privacy.json, writes `experiments/results/person_splits.json`
(or RESULTS_JSON) and prints four Markdown tables: the cnn's utility per split, every student
over the splits, attribution per split, and membership inference per split with every score
pooled over the splits (`stimuli.privacy.stats.pooled_auc`:
mean AUC, persons bootstrapped jointly across splits).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from experiments.tables import acc_kappa
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.privacy.stats import plain, pooled_auc

OUT = REPO_ROOT / "experiments" / "results" / "person_splits.json"


def job_config(job_dir: Path, output_dir: Path | str) -> DictConfig:
    """A finished job's resolved config, quiet, writing to `output_dir` (not the job folder), to
    reopen the job with `stimuli.pipeline.open_job`: its cached stages load, nothing is redone."""
    cfg = OmegaConf.load(job_dir / "config_resolved.yaml")
    cfg.paths.output_dir = str(output_dir)
    cfg.quiet = True
    return cfg


def load_jobs(sweeps: list[Path]) -> list[dict]:
    """One entry per finished job (results.json and privacy.json present), ordered by split seed."""
    jobs = []
    for job in (p for sweep in sweeps for p in sorted(sweep.iterdir()) if p.is_dir()):
        if not ((job / "results.json").is_file() and (job / "privacy.json").is_file()):
            continue
        cfg = yaml.safe_load((job / "config_resolved.yaml").read_text())
        jobs.append(
            {
                "dir": job,
                "split_seed": int(cfg["data"]["split"]["seed"]),
                "results": read_json(job / "results.json"),
                "persons": read_json(job / "privacy.json")["details"]["membership"]["persons"],
            }
        )
    seeds = [j["split_seed"] for j in jobs]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"{sweeps}: several jobs share a split seed ({seeds})")
    return sorted(jobs, key=lambda j: j["split_seed"])


def pooled_membership(jobs: list[dict], n_bootstrap: int = 2000, seed: int = 0) -> dict:
    """Every membership score the jobs have in common, pooled over the splits."""
    names = set.intersection(*(set(j["persons"][0]) for j in jobs)) - {
        "person",
        "member",
        "windows",
    }
    out = {}
    for name in sorted(names):
        splits = [
            (
                np.array([p["person"] for p in j["persons"]]),
                np.array([p["member"] for p in j["persons"]]),
                np.array([np.nan if p[name] is None else p[name] for p in j["persons"]]),
            )
            for j in jobs
        ]
        out[name] = pooled_auc(splits, n_bootstrap, 0.95, seed)
    return out


def utility_table(jobs: list[dict]) -> str:
    lines = [
        "| split seed | teacher acc / kappa | cnn real | cnn distilled | gap (acc / kappa) "
        "| cnn hard labels | agreement |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        r = j["results"]
        t, cnn = r["teacher"]["test"], r["students"]["cnn"]
        lines.append(
            f"| {j['split_seed']} | {acc_kappa(t)} "
            f"| {acc_kappa(cnn['real'])} "
            f"| {acc_kappa(cnn['stimuli_kd'])} "
            f"| {acc_kappa(cnn['gap_kd'])} "
            f"| {acc_kappa(cnn['stimuli'])} "
            f"| {r['stimuli']['teacher_agreement']:.3f} |"
        )
    return "\n".join(lines)


def students_table(jobs: list[dict]) -> str:
    """Every student the jobs share: accuracy on real windows, on the stimuli's hard labels and
    distilled, as the mean over the splits (min-max in brackets), and the distilled gap."""
    names = [
        n
        for n in jobs[0]["results"]["students"]
        if all(n in j["results"]["students"] for j in jobs)
    ]
    lines = [
        "| student | real acc | hard labels acc | distilled acc | distilled gap acc / kappa "
        "(mean, worst) |",
        "|---|---|---|---|---|",
    ]

    def spread(values: list[float]) -> str:
        return f"{np.mean(values):.3f} [{min(values):.3f}, {max(values):.3f}]"

    for name in names:
        rows = [j["results"]["students"][name] for j in jobs]
        gaps = [r["gap_kd"] for r in rows]
        worst = max(gaps, key=lambda g: g["acc"])
        lines.append(
            f"| {name} | {spread([r['real']['acc'] for r in rows])} "
            f"| {spread([r['stimuli']['acc'] for r in rows])} "
            f"| {spread([r['stimuli_kd']['acc'] for r in rows])} "
            f"| {np.mean([g['acc'] for g in gaps]):.3f} / {np.mean([g['kappa'] for g in gaps]):.3f}"
            f", {worst['acc']:.3f} / {worst['kappa']:.3f} |"
        )
    return "\n".join(lines)


def attribution_table(jobs: list[dict]) -> str:
    """Stimuli against the pooled non-member reference and, where the audit has it, the balanced
    leaky release (real windows, as many of each training person), for each attack."""
    lines = [
        "| split seed | classifier: stimuli / outsiders pooled / balanced leaky | NN raw "
        "| NN embedding | auditor control top-1 |",
        "|---|---|---|---|---|",
    ]

    def cell(block: dict) -> str:
        rows = [block["release"], block["non_members"]]
        rows += [block["leaky_balanced"]] if "leaky_balanced" in block else []
        return " / ".join(f"{r['top1_ratio']:.2f}, {r['entropy']:.3f}" for r in rows)

    for j in jobs:
        p = j["results"]["privacy"]
        ac, nn = p["attribution_classifier"], p["attribution_neighbour"]
        lines.append(
            f"| {j['split_seed']} | {cell(ac)} | {cell(nn['raw'])} | {cell(nn['embedding'])} "
            f"| {ac['control']['top1_acc']:.3f} |"
        )
    return "\n".join(lines)


def membership_table(jobs: list[dict], pooled: dict) -> str:
    seeds = [j["split_seed"] for j in jobs]
    lines = [
        "| score | " + " | ".join(f"split {s}" for s in seeds) + " | pooled [95 % CI] |",
        "|---|" + "---|" * len(seeds) + "---|",
    ]
    for name, res in pooled.items():
        per_split = " | ".join(f"{a:.3f}" for a in res["split_aucs"])
        lines.append(
            f"| {name} | {per_split} | **{res['auc']:.3f}** "
            f"[{res['ci_low']:.2f}, {res['ci_high']:.2f}] |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.person_splits")
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    jobs = load_jobs(args.sweeps)
    if not jobs:
        raise SystemExit(f"{args.sweeps}: no finished jobs (no */results.json with privacy.json)")
    pooled = pooled_membership(jobs)
    write_json(
        args.out,
        plain(
            {
                "split_seeds": [j["split_seed"] for j in jobs],
                "n_persons_per_split": [len(j["persons"]) for j in jobs],
                "membership_pooled": pooled,
                "jobs": [
                    {
                        "split_seed": j["split_seed"],
                        "teacher": j["results"]["teacher"],
                        "students": j["results"]["students"],
                        "stimuli": j["results"]["stimuli"],
                        "privacy": j["results"]["privacy"],
                    }
                    for j in jobs
                ],
            }
        ),
    )
    tables = [utility_table(jobs), students_table(jobs), attribution_table(jobs)]
    print(*tables, membership_table(jobs, pooled), sep="\n\n")


if __name__ == "__main__":
    main(sys.argv[1:])
