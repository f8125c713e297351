"""How much each student's score moves between draws of the stimuli, on one person split.

    python -m stimuli.run -m +experiment=apnea_cnn 'synthesis.draw=1,2,3,4' \
        'stages=[data,teacher,synthesize,students,evaluate]'
    python -m experiments.draws SWEEP_DIR [--with RESULTS_JSON ...]

A draw (`synthesis.draw`) is the same mechanism seeded anew: the teacher, the label teachers and
every student on real windows are shared (cached), only the stimuli and what learns from them
change. The spread over draws is how far one run's scores on stimuli can be trusted: a change of
a setting that moves a score by less than that spread has not been shown to matter. `--with`
adds the results.json of other runs of the same split (e.g. draw 0,
`bench/results/utility.json`). Writes `experiments/results/draws.json` and prints one Markdown
table of test accuracy per student and training set: mean ± sd over the draws, the range, and
each draw's value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.privacy.verdict import utility_over_splits

OUT = REPO_ROOT / "experiments" / "results" / "draws.json"
VARIANTS = ("real", "stimuli", "stimuli_kd")


def sweep_results(sweep: Path) -> dict[str, dict]:
    """results.json of every finished job under `sweep`, by `draw N` from the job's config."""
    runs = {}
    for job in sorted(p for p in Path(sweep).iterdir() if (p / "results.json").is_file()):
        draw = OmegaConf.load(job / "config_resolved.yaml").synthesis.get("draw", 0)
        runs[f"draw {draw}"] = read_json(job / "results.json")
    return runs


def draw_results(sweep: Path, extra: list[Path]) -> dict[str, dict]:
    """results.json of every finished job under `sweep` and of each `extra` file, by label
    (`draw N` from the job's config; an extra file by its path)."""
    runs = {str(path): read_json(path) for path in extra} | sweep_results(sweep)
    if len(runs) < 2:
        raise SystemExit(f"{sweep}: {len(runs)} finished run(s); a spread needs at least 2")
    return runs


def spread(runs: dict[str, dict]) -> dict:
    """Per student and training set: mean, sd, worst over the runs (as the audit pools splits)
    and each run's test accuracy and kappa (a fit that failed, `{"error": ...}`, is left out)."""
    pooled = utility_over_splits(list(runs.values()))
    for student, variants in pooled.items():
        for variant, cell in variants.items():
            cell["runs"] = {
                label: {m: r["students"][student][variant][m] for m in ("acc", "kappa")}
                for label, r in runs.items()
                if "acc" in r.get("students", {}).get(student, {}).get(variant, {})
            }
    return pooled


def table(pooled: dict) -> str:
    lines = [
        "| student | trained on | acc mean ± sd | acc range (pp) | kappa mean ± sd | per run |",
        "|---|---|---|---|---|---|",
    ]
    for student, variants in pooled.items():
        for variant in VARIANTS:
            cell = variants.get(variant)
            if cell is None:
                continue
            accs = [v["acc"] for v in cell["runs"].values()]
            lines.append(
                f"| {student} | {variant} | {cell['acc']['mean']:.4f} ± {cell['acc']['sd']:.4f} "
                f"| {100 * (max(accs) - min(accs)):.2f} "
                f"| {cell['kappa']['mean']:.3f} ± {cell['kappa']['sd']:.3f} "
                f"| {' '.join(f'{a:.4f}' for a in accs)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--with", dest="extra", type=Path, nargs="*", default=[])
    args = parser.parse_args(argv)
    runs = draw_results(args.sweep, args.extra)
    pooled = spread(runs)
    command = "python -m experiments.draws " + " ".join(argv if argv is not None else sys.argv[1:])
    write_json(OUT, {"command": command, "runs": list(runs), "students": pooled})
    print(table(pooled))


if __name__ == "__main__":
    main()
