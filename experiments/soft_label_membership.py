"""Do students distilled from the soft labels remember the training persons?

    python -m experiments.soft_label_membership SWEEP_DIR [--students cnn,mlp,logreg] [--out JSON]

The audit's criteria attack the stimuli (attribution, in/out, Anonymeter, DCR). The bundle's
soft labels come from label teachers trained on the private persons, and no criterion attacks
them. This probe attacks what a third party learns from them. In every finished split of an
audit sweep, it scores each person of the cohort with the split's saved students
(`students/NAME-VARIANT.joblib`): the mean log-probability a student gives the true label of
the person's windows. A student that memorised its training persons is surer of their windows.

Each score is calibrated against the same person's out-of-split scores, as criterion 2 does
(`stimuli.privacy.verdict.calibrate`). Members against non-members are then pooled over the
splits (`stimuli.privacy.roc.family_roc`): AUC with a family-wise person-bootstrap interval over
the students (at 0.99, as the verdict's `privacy.family_level`), and TPR at FPR 0.1. Members
are a split's training persons. The students on real windows (`real`) are the positive control:
they trained on the members' own windows. With `--placebo`, the same students are also fitted on
white noise with random soft labels, as many windows as the release, and scored the same way:
the probe must not find members in what learned nothing of them. It is a probe, not one of the
verdict's criteria.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from experiments.per_person import job_models, reopen_job
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.privacy.roc import family_roc
from stimuli.privacy.verdict import calibrate
from stimuli.students.fit import student_factories

OUT = REPO_ROOT / "experiments" / "results" / "soft_label_membership.json"
# real windows (must fail), the stimuli's hard labels (an audit with `hard_labels=true`), the
# soft labels, the placebo (must pass)
VARIANTS = ("real", "stimuli", "stimuli_kd", "placebo")
PLACEBO_SEED = 9000  # + the split seed: the noise and labels of a split's placebo


def true_label_logp(probs: np.ndarray, y: np.ndarray, person: np.ndarray) -> dict[int, float]:
    """Per person: the mean log-probability of the true label over the person's windows."""
    logp = np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))
    return {int(p): float(logp[person == p].mean()) for p in np.unique(person)}


def placebo_students(cfg: DictConfig, students: list[str], n: int, shape: tuple, fs: float):
    """The placebo: each student of `cfg.students` fitted, as on a release, on `n` white-noise
    windows of `shape` with random soft labels (seeded by the split). It learned nothing of any
    person, so the probe must find no members in it."""
    rng = np.random.default_rng(PLACEBO_SEED + int(cfg.data.split.seed))
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    soft = rng.dirichlet(np.ones(2), n).astype(np.float32)
    factories = student_factories({name: cfg.students[name] for name in students})
    return {
        f"{name}/placebo": factory(fs=fs, seed=int(cfg.seed)).fit(x, soft.argmax(1), soft=soft)
        for name, factory in factories.items()
    }


def split_scores(job_dir: Path, students: list[str], placebo: bool = False) -> dict:
    """One finished job: every person of its cohort, whether it trained on them, and each saved
    student's score per person, by variant (with `placebo`, also the placebo's students)."""
    cfg = OmegaConf.load(job_dir / "config_resolved.yaml")
    (dm,) = reopen_job(job_dir, "dm")
    parts = {split: ds.arrays() for split, ds in dm.datasets.items()}
    x, y, person = (np.concatenate([p[i] for p in parts.values()]) for i in range(3))
    members = set(np.unique(parts["train"][2]).tolist())
    persons = sorted(int(p) for p in np.unique(person))
    models = job_models(job_dir, students)
    if placebo:
        n = int(cfg.synthesis.n)
        models |= placebo_students(cfg, students, n, x.shape[1:], float(dm.fs))
    scores: dict[str, dict[str, list[float]]] = {v: {} for v in VARIANTS}
    for key, model in models.items():
        name, variant = key.split("/")
        if variant in scores:
            per_person = true_label_logp(np.asarray(model.predict_proba(x)), y, person)
            scores[variant][name] = [per_person[p] for p in persons]
    return {"persons": persons, "is_member": [p in members for p in persons], "scores": scores}


def pooled(
    splits: list[dict], n_bootstrap: int = 1000, family_level: float = 0.99, seed: int = 0
) -> dict[str, dict]:
    """Per variant and student: members against non-members over every (split, person), each
    score calibrated per person; intervals as criterion 2's (`conf/privacy/default.yaml`: 95 %
    raw, `family_level` family-wise over the students)."""
    person = np.concatenate([s["persons"] for s in splits])
    member = np.concatenate([s["is_member"] for s in splits]).astype(bool)
    split = np.concatenate([[k] * len(s["persons"]) for k, s in enumerate(splits)])
    out = {}
    for variant in VARIANTS:
        names = sorted(set.intersection(*(set(s["scores"].get(variant, {})) for s in splits)))
        calibrated = {
            n: calibrate(person, member, np.concatenate([s["scores"][variant][n] for s in splits]))
            for n in names
        }
        if not calibrated:
            continue
        rocs = family_roc(
            person,
            member,
            calibrated,
            select=split < max(len(splits) // 2, 1),
            n_bootstrap=n_bootstrap,
            ci=0.95,
            family_level=family_level,
            seed=seed,
        )
        out[variant] = {n: {k: v for k, v in r.items() if k != "roc"} for n, r in rocs.items()}
    return out


def table(result: dict[str, dict]) -> str:
    lines = ["| student | variant | AUC [family-wise interval] | TPR at FPR 0.1 |"]
    lines.append("|---|---|---|---|")
    for variant, block in result.items():
        for name, r in block.items():
            if r.get("auc") is None:
                continue
            lines.append(
                f"| {name} | {variant} | {r['auc']:.3f} [{r['family_ci_low']:.2f}, "
                f"{r['family_ci_high']:.2f}] | {r['tpr_at_fpr_0.1']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.soft_label_membership")
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--students", default="cnn,mlp,logreg", help="comma-separated")
    parser.add_argument("--label", default=None, help="the row's name in --out")
    parser.add_argument(
        "--placebo", action="store_true", help="also fit and score the white-noise placebo"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    jobs = sorted(p for p in args.sweep.iterdir() if (p / "students").is_dir())
    if len(jobs) < 2:
        raise SystemExit(f"{args.sweep}: {len(jobs)} finished job(s) with students; need >= 2")
    torch.set_num_threads(1)
    splits = [split_scores(job, args.students.split(","), args.placebo) for job in jobs]
    result = pooled(splits)
    rows = read_json(args.out) if args.out.is_file() else {}
    rows[args.label or str(args.sweep)] = {
        "sweep": str(args.sweep),
        "splits": len(splits),
        "students": result,
        "per_split": splits,  # the scores, to pool again
    }
    write_json(args.out, rows)
    print(table(result))


if __name__ == "__main__":
    main(sys.argv[1:])
