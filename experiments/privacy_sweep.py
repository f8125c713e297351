"""Table of the identity-inhibition ablation (`+experiment=privacy_sweep`), one row per job.

    python -m experiments.privacy_sweep SWEEP_DIR [MORE_DIRS ...]

Reads the results.json of each job folder under the given folders, writes
`experiments/results/privacy_sweep.json` and prints two Markdown tables: utility per inhibition
weight (and any other override of a job), and the privacy numbers per weight.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from experiments.tables import acc_kappa
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT

OUT = REPO_ROOT / "experiments" / "results" / "privacy_sweep.json"


def job_rows(sweeps: list[Path]) -> list[dict]:
    jobs = [p for sweep in sweeps for p in sorted(sweep.iterdir()) if p.is_dir()]
    rows = []
    for job in jobs:
        if not (job / "results.json").is_file():
            continue
        results = read_json(job / "results.json")
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        weight = next(
            (float(o.split("=", 1)[1]) for o in overrides if "identity_uniform=" in o), 1.0
        )
        skip = ("identity_uniform=", "launcher", "+experiment=", "quiet=", "threads=")
        extra = [o for o in overrides if not any(k in o for k in skip)]
        label = f"{weight:g}" + (f" + `{' '.join(extra)}`" if extra else "")
        rows.append({"weight": weight, "label": label, "overrides": overrides, **results})
    return sorted(rows, key=lambda r: (len(r["label"]), r["weight"]))


def utility_table(rows: list[dict]) -> str:
    lines = [
        "| inhibition weight | teacher agreement | cnn real | cnn distilled | gap (acc / kappa) "
        "| logreg real | logreg distilled |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["students"]
        cnn, lr = s["cnn"], s["logreg"]
        lines.append(
            f"| {r['label']} | {r['stimuli']['teacher_agreement']:.3f} "
            f"| {acc_kappa(cnn['real'])} "
            f"| {acc_kappa(cnn['stimuli_kd'])} "
            f"| {acc_kappa(cnn['gap_kd'])} "
            f"| {acc_kappa(lr['real'])} "
            f"| {acc_kappa(lr['stimuli_kd'])} |"
        )
    return "\n".join(lines)


def privacy_table(rows: list[dict]) -> str:
    lines = [
        "| weight | classifier top-1 ratio / entropy | NN raw | NN embedding "
        "| membership AUC (knn_embedding) [CI] | copy share / flagged | auditor conf. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["privacy"]
        ac = p["attribution_classifier"]["release"]
        nn = p["attribution_neighbour"]
        mi = p["membership"]["release"]["knn_embedding"]
        cd = p["copy_distance"]["release"]
        lines.append(
            f"| {r['label']} | {ac['top1_ratio']:.2f} / {ac['entropy']:.3f} "
            f"| {nn['raw']['release']['top1_ratio']:.2f} / {nn['raw']['release']['entropy']:.3f} "
            f"| {nn['embedding']['release']['top1_ratio']:.2f} / "
            f"{nn['embedding']['release']['entropy']:.3f} "
            f"| {mi['auc']:.3f} [{mi['ci_low']:.2f}, {mi['ci_high']:.2f}] "
            f"| {cd['share_closer_to_training']:.3f} / {cd['flagged']} "
            f"| {ac['confidence']:.3f} |"
        )
    return "\n".join(lines)


def main(args: list[str]) -> None:
    rows = job_rows([Path(a) for a in args])
    if not rows:
        raise SystemExit(f"{args}: no finished jobs (no */results.json)")
    write_json(OUT, rows)
    print(utility_table(rows), privacy_table(rows), sep="\n\n")


if __name__ == "__main__":
    main(sys.argv[1:])
