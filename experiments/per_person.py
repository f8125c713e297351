"""Test accuracy person by person: the teacher and the saved students of one finished job.

    python -m experiments.per_person JOB_DIR [--students cnn,logreg] [--out RESULTS_JSON]

A split's test accuracy is a mean over few persons (6 in the open cohort's default split), so a
gap between two models can sit on one or two of them. This scores the job's teacher (from the
cache) and its students (`students/NAME-VARIANT.joblib`) on each test person's windows, and on
the validation persons pooled (where the teacher was selected). Rows go to RESULTS_JSON when
given; the table is printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
import torch
from omegaconf import OmegaConf

from stimuli.classifier import predict_proba
from stimuli.io import write_json
from stimuli.pipeline import open_job


def job_models(job_dir: Path, students: list[str] | None) -> dict[str, object]:
    """The job's saved students, `NAME/VARIANT` → model, restricted to `students` if given."""
    found = {}
    for path in sorted((job_dir / "students").glob("*.joblib")):
        name, variant = path.stem.rsplit("-", 1)
        if students is None or name in students:
            found[f"{name}/{variant}"] = joblib.load(path)
    return found


def reopen_job(job_dir: Path, *artifacts: str) -> tuple:
    """`artifacts` (e.g. "dm", "teacher") of a finished job, reopened from its cache."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = OmegaConf.load(job_dir / "config_resolved.yaml")
        cfg.paths.output_dir, cfg.quiet = str(tmp), True
        job = open_job(cfg)
        return tuple(job.get(name) for name in artifacts)


def per_person_accuracy(job_dir: Path, students: list[str] | None = None) -> dict:
    dm, teacher = reopen_job(job_dir, "dm", "teacher")
    models = {"teacher": None, **job_models(job_dir, students)}
    if len(models) == 1:
        raise SystemExit(f"{job_dir}: no saved students match {students}")

    def predicted(model: object, x: np.ndarray) -> np.ndarray:
        if model is None:
            return predict_proba(teacher, torch.from_numpy(x)).numpy().argmax(1)
        return np.asarray(model.predict_proba(x)).argmax(1)

    x, y, person = dm.datasets["test"].arrays()
    x_val, y_val, _ = dm.datasets["val"].arrays()
    hits = {name: predicted(m, x) == y for name, m in models.items()}
    rows = []
    for p in np.unique(person):
        mine = person == p
        rows.append(
            {
                "person": int(p),
                "windows": int(mine.sum()),
                "apnea_share": float(y[mine].mean()),
                "acc": {name: float(h[mine].mean()) for name, h in hits.items()},
            }
        )
    return {
        "job": str(job_dir),
        "test_acc": {name: float(h.mean()) for name, h in hits.items()},
        "val_acc": {
            name: float((predicted(m, x_val) == y_val).mean()) for name, m in models.items()
        },
        "test_persons": rows,
    }


def table(result: dict) -> str:
    names = list(result["test_acc"])
    lines = [
        "| test person | windows | apnea share | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for row in result["test_persons"]:
        accs = " | ".join(f"{row['acc'][n]:.3f}" for n in names)
        lines.append(f"| {row['person']} | {row['windows']} | {row['apnea_share']:.2f} | {accs} |")
    for key, label in (("test_acc", "all test windows"), ("val_acc", "validation persons")):
        lines.append(
            f"| {label} | | | " + " | ".join(f"{result[key][n]:.3f}" for n in names) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.per_person")
    parser.add_argument("job", type=Path)
    parser.add_argument("--students", default="cnn", help="comma-separated; 'all' for every one")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not (args.job / "config_resolved.yaml").is_file():
        raise SystemExit(f"{args.job}: not a finished job (no config_resolved.yaml)")
    torch.set_num_threads(1)
    students = None if args.students == "all" else args.students.split(",")
    result = per_person_accuracy(args.job, students)
    if args.out:
        write_json(args.out, result)
    print(table(result))


if __name__ == "__main__":
    main(sys.argv[1:])
