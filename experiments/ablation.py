"""Ablation of the synthesis and student settings on `apnea_cnn` (teacher-architecture student).

    python -m experiments.ablation NAME "override ..." [NAME "override ..." ...]

Each variant is a real pipeline run (`student=cnn`, the default cache, so the teacher and
identity model are trained once and stimuli are reused when their config repeats). Appends one
row per variant to `experiments/results/ablation.json` and prints a Markdown table of all rows.
"""

from __future__ import annotations

import sys
import tempfile

from experiments.tables import acc_kappa
from stimuli.config import compose_config
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.pipeline import run_pipeline

OUT = REPO_ROOT / "experiments" / "results" / "ablation.json"


def run_variant(overrides: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config(
            [
                "+experiment=apnea_cnn",
                "student=cnn",
                "quiet=true",
                f"paths.output_dir={tmp}",
                *overrides,
            ]
        )
        return run_pipeline(cfg)


def table(rows: list[dict]) -> str:
    lines = [
        "| variant | overrides | stimuli acc / kappa (hard) | distilled acc / kappa "
        "| real acc / kappa | agreement | synth s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["students"]["cnn"]
        lines.append(
            f"| {r['name']} | `{' '.join(r['overrides']) or '(default)'}` "
            f"| {acc_kappa(s['stimuli'])} "
            f"| {acc_kappa(s['stimuli_kd'])} "
            f"| {acc_kappa(s['real'])} "
            f"| {r['stimuli']['teacher_agreement']:.3f} | {r['stimuli']['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(args: list[str]) -> None:
    for name, overrides in zip(args[::2], args[1::2]):
        results = run_variant(overrides.split())
        # read just before writing: concurrent ablation jobs each add their own rows
        rows = read_json(OUT) if OUT.is_file() else []
        rows = [r for r in rows if r["name"] != name] + [
            {
                "name": name,
                "overrides": overrides.split(),
                "teacher": results["teacher"]["test"],
                "stimuli": results["stimuli"],
                "students": results["students"],
            }
        ]
        write_json(OUT, rows)
        print(table(rows), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
