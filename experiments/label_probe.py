"""Which labels a release can carry: membership inference against students trained on the
stimuli with each label set, pooled over person splits.

    python -m experiments.label_probe SWEEP_DIR [MORE_DIRS ...] [--students cnn,logreg,svm]
                                      [--labels targets,teacher_hard,agreed] [--out RESULTS_JSON]

Each finished job of `+experiment=person_splits` holds students trained on the stimuli's hard
labels (`stimuli`) and on their soft labels (`stimuli_kd`: the teacher's probabilities in jobs
made before `soft_labels.teachers` defaulted to 2), with their membership scores per person in
privacy.json. This adds, for the chosen students, other label
sets for the same stimuli:
- `targets`: the synthesis targets, the class probabilities each stimulus was optimised towards.
  They were drawn (flat Dirichlet) before the teacher saw the stimulus, so unlike the teacher's
  outputs they carry nothing the teacher computed; what the teacher knows reaches the student
  only through the stimuli themselves;
- `teacher_hard`: the teacher's decision on each stimulus (the argmax of its probabilities), one
  bit of its output where the soft labels give its whole confidence;
- `agreed`: only the stimuli whose teacher decision is their synthesis label, with that label
  (what a release that drops the stimuli the synthesis did not bring to their target holds).
- `aggregatedK` (K = 2, 3, ...): the mean probabilities of K label teachers, each trained on its
  own 1/K of the training persons (`soft_labels.teachers=K`, the `soft_labels` stage; cached
  like the teacher): soft labels that any one person moves less than the teacher's.

The new students are scored on the job's test persons and by the membership attack (the job's
stimuli, teacher and privacy config, all from the cache), and every student-loss score is pooled
over the splits as in `experiments.person_splits`. Each job's new students are kept in its folder
(`label_probe.json`), so the command can run again as more jobs finish. Rows go to
`experiments/results/label_probe.json`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from experiments.person_splits import job_config, load_jobs, pooled_membership
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.pipeline import open_job
from stimuli.privacy.membership import membership_inference
from stimuli.privacy.stats import plain
from stimuli.students.fit import Students, fit_students, score_students, student_factories

OUT = REPO_ROOT / "experiments" / "results" / "label_probe.json"


def _agreed(stim: dict) -> tuple[np.ndarray, np.ndarray, None]:
    keep = stim["teacher_probs"].argmax(1) == stim["labels"]
    return stim["x"][keep], stim["labels"][keep], None


# label set -> (stimuli, hard labels, soft labels or None) from the cached stimuli arrays
LABEL_SETS: dict[str, Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray | None]]] = {
    "targets": lambda stim: (stim["x"], stim["labels"], stim["targets"]),
    "teacher_hard": lambda stim: (stim["x"], stim["teacher_probs"].argmax(1), None),
    "agreed": _agreed,
}
AGGREGATED = re.compile(r"aggregated(\d+)")
# the settings a current run has (jobs made before them have none), so that the label teachers
# are keyed and cached as a pipeline run's
SOFT_LABEL_DEFAULTS = OmegaConf.to_container(
    OmegaConf.load(REPO_ROOT / "conf" / "config.yaml").soft_labels
)


def label_set(name: str) -> Callable[[dict], tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    if AGGREGATED.fullmatch(name):
        return lambda stim: (stim["x"], stim["labels"], stim[name])
    if name not in LABEL_SETS:
        known = [*LABEL_SETS, "aggregatedK"]
        raise SystemExit(f"--labels: unknown label set {name!r} (known: {known})")
    return LABEL_SETS[name]


def probe_students(
    job_dir: Path, names: list[str], label_sets: list[str], tmp: Path
) -> dict[str, dict]:
    """Students `names` trained on the job's stimuli with each of `label_sets`: for each
    `NAME/stimuli_SET`, its test scores and its membership score per person. Kept in the job
    folder (`label_probe.json`), so a later call trains only what it lacks."""
    wanted = [f"{n}/stimuli_{s}" for n in names for s in label_sets]
    done_file = job_dir / "label_probe.json"
    done = read_json(done_file) if done_file.is_file() else {}
    missing = [w for w in wanted if w not in done]
    if not missing:
        return {w: done[w] for w in wanted}
    cfg = job_config(job_dir, tmp)
    job = open_job(cfg)
    dm, cached = job.get("dm"), job.get("stimuli")
    stim = dict(cached)
    for k in sorted({int(m[1]) for w in missing if (m := AGGREGATED.search(w))}):
        cfg_k = cfg.copy()
        cfg_k.soft_labels = {**SOFT_LABEL_DEFAULTS, "teachers": k}
        job_k = open_job(cfg_k, {"dm": dm, "stimuli": cached})
        stim[f"aggregated{k}"] = job_k.get("soft_labels")
    if "targets" not in stim and any(k.endswith("_targets") for k in missing):
        raise SystemExit(f"{job_dir}: its cached stimuli have no synthesis targets")
    # name -> its missing label sets, in `wanted` order (names outer, label sets inner)
    by_name: dict[str, list[str]] = {}
    for key in missing:
        name, label_set_name = key.split("/stimuli_")
        if name not in cfg.students:
            raise SystemExit(f"{job_dir}: no student {name!r} (it has {list(cfg.students)})")
        by_name.setdefault(name, []).append(label_set_name)
    factories = student_factories({name: cfg.students[name] for name in by_name})
    fitted: Students = {}
    for name, sets in by_name.items():  # each student on its own label sets only
        variants = {f"stimuli_{s}": label_set(s)(stim) for s in sets}
        fitted.update(fit_students({name: factories[name]}, variants, fs=dm.fs, seed=int(cfg.seed)))
    students = {
        f"{name}/{variant}": student
        for name, block in fitted.items()
        for variant, student in block.items()
        if not isinstance(student, str)
    }
    x_test, y_test, _ = dm.datasets["test"].arrays()
    pcfg = OmegaConf.to_container(cfg.privacy, resolve=True)
    _, details = membership_inference(
        dm, job.get("teacher"), stim["x"], students, pcfg, int(cfg.seed)
    )
    table, _ = score_students(fitted, x_test, y_test)
    for name, block in table.items():
        for variant, metrics in block.items():
            key = f"{name}/{variant}"
            if "error" in metrics:  # a label set this student could not learn from
                done[key] = {"error": metrics["error"]}
                continue
            persons = {str(p["person"]): p[f"student_loss/{key}"] for p in details["persons"]}
            done[key] = {"test": metrics, "persons": persons}
    write_json(done_file, plain(done))
    return {w: done[w] for w in wanted}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.label_probe")
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--students", default="cnn,logreg,svm")
    parser.add_argument("--labels", default=",".join(LABEL_SETS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    names, label_sets = args.students.split(","), args.labels.split(",")
    for name in label_sets:
        label_set(name)  # an unknown name fails here, before any training
    torch.set_num_threads(1)
    sweeps = args.sweeps
    jobs = load_jobs(sweeps)
    if not jobs:
        raise SystemExit(f"{sweeps}: no finished jobs (no */results.json with privacy.json)")
    utility: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for job in jobs:
            for key, res in probe_students(job["dir"], names, label_sets, Path(tmp)).items():
                if "error" in res:
                    print(f"{job['dir']}: {key} not trained: {res['error']}", file=sys.stderr)
                    continue
                utility.setdefault(key, []).append(res["test"])
                for p in job["persons"]:  # the new scores beside the job's own
                    p[f"student_loss/{key}"] = res["persons"][str(p["person"])]
    pooled = {k: v for k, v in pooled_membership(jobs).items() if k.startswith("student_loss/")}
    for job in jobs:
        for n, block in job["results"]["students"].items():
            for variant in ("stimuli", "stimuli_kd"):
                if f"student_loss/{n}/{variant}" in pooled:
                    utility.setdefault(f"{n}/{variant}", []).append(block[variant])
    rows = []
    print("| student / labels | test acc (mean) | membership AUC pooled [95 % CI] | per split |")
    print("|---|---|---|---|")
    for key, res in sorted(pooled.items()):
        name = key.split("/", 1)[1]
        accs = [u["acc"] for u in utility.get(name, [])]
        rows.append(
            {
                "student": name,
                "test_acc_mean": float(np.mean(accs)) if accs else None,
                "test_acc_per_split": accs,
                "membership": res,
            }
        )
        acc = f"{np.mean(accs):.3f}" if accs else "-"
        print(
            f"| {name} | {acc} | {res['auc']:.3f} [{res['ci_low']:.2f}, {res['ci_high']:.2f}] "
            f"| {' '.join(f'{a:.2f}' for a in res['split_aucs'])} |"
        )
    if not rows:
        raise SystemExit(f"{sweeps}: no student-loss scores to pool")
    write_json(args.out, plain({"split_seeds": [j["split_seed"] for j in jobs], "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1:])
