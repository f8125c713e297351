"""Has a change of the code or of a setting moved a student's score beyond the spread over draws?

    python -m experiments.draw_difference NEW_SWEEP ... --base BASE_SWEEP ... \
        [--with NEW_RESULTS_JSON ...] [--base-with BASE_RESULTS_JSON ...] [--bar 0.01] [--out FILE]

Each side is one or more sweeps of draws of the stimuli (`synthesis.draw`) on the same person
split: the new code or setting, and the base (read as `experiments.draws` reads them; `--with`
and `--base-with` add other runs' results.json, e.g. each side's draw 0). One draw of each cannot
tell a change from a new draw: a distilled knn or random forest moves by 1-2 pp from one draw to
the next of the same code (`experiments/results/draws.json`). So for each student and training
set this compares the mean test accuracy over the draws of both sides: the difference
new - base and its Welch 95 % interval (the two sides' draws are independent and their spreads
may differ), placed against `--bar`, the most the new code may lose:

- `within`: the interval's lower end is above -bar: the new code is shown to lose less than bar;
- `worse`: the interval's upper end is below -bar: it is shown to lose more;
- `undecided`: the interval straddles -bar. `draws_needed` is then about how many draws per
  side would decide it at the spreads and difference observed (none when the difference itself
  is past the bar: more draws would only confirm a loss).

Writes `--out` (default `experiments/results/draw_difference.json`) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from experiments.draws import spread, sweep_results
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT

OUT = REPO_ROOT / "experiments" / "results" / "draw_difference.json"
VARIANTS = ("real", "stimuli", "stimuli_kd")
LEVEL = 0.95


def side_runs(sweeps: list[Path], extra: list[Path]) -> dict[str, dict]:
    """The runs of one side: the extra results.json files and every sweep's draws; a draw that
    two sweeps both hold is refused (it would be counted twice, or one of them lost)."""
    runs = {str(path): read_json(path) for path in extra}
    for sweep in sweeps:
        found = sweep_results(sweep)
        twice = sorted(set(found) & set(runs))
        if twice:
            raise SystemExit(f"{sweep}: {twice} already read from another sweep of this side")
        runs.update(found)
    return runs


def accuracies(runs: dict[str, dict]) -> dict[str, dict[str, list[float]]]:
    """Test accuracy per student and training set, one value per run that has it."""
    return {
        student: {
            variant: [run["acc"] for run in cell["runs"].values()]
            for variant, cell in variants.items()
            if variant in VARIANTS
        }
        for student, variants in spread(runs).items()
    }


def compare(new: list[float], base: list[float], bar: float) -> dict:
    """Mean of each side, the difference new - base with its Welch interval, and its standing
    against `bar` (see the module docstring)."""
    a, b = np.asarray(new, dtype=float), np.asarray(base, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"each side needs at least 2 draws, got {len(a)} new and {len(b)} base")
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # e.g. students on real windows: cached, identical
        # exact: not the float rounding of means of equal values (nor scipy's warning on it)
        diff, sd_new, sd_base = float(a[0] - b[0]), 0.0, 0.0
        low = high = diff
    else:
        diff = float(a.mean() - b.mean())
        sd_new, sd_base = float(a.std(ddof=1)), float(b.std(ddof=1))
        interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(LEVEL)
        low, high = float(interval.low), float(interval.high)
    standing = "within" if low > -bar else "worse" if high < -bar else "undecided"
    needed = None
    if standing == "undecided" and diff > -bar:
        # The interval's half width is about t * sqrt((sd_new^2 + sd_base^2) / n) with n draws
        # per side; it must shrink below the distance from the difference to -bar.
        t = float(stats.norm.ppf(0.5 + LEVEL / 2))
        needed = math.ceil(t**2 * (sd_new**2 + sd_base**2) / (diff + bar) ** 2)
    return {
        "new": {"mean": float(a.mean()), "sd": sd_new, "n": len(a), "acc": a.tolist()},
        "base": {"mean": float(b.mean()), "sd": sd_base, "n": len(b), "acc": b.tolist()},
        "difference": diff,
        "interval": [low, high],
        "standing": standing,
        "draws_needed": needed,
    }


def difference(new_runs: dict[str, dict], base_runs: dict[str, dict], bar: float) -> dict:
    """`compare` for every student and training set with at least 2 draws on both sides (a
    sweep may train fewer students than a side's `--with` run)."""
    new, base = accuracies(new_runs), accuracies(base_runs)
    out: dict[str, dict] = {}
    for student, variants in new.items():
        for variant, accs in variants.items():
            others = base.get(student, {}).get(variant, [])
            if len(accs) >= 2 and len(others) >= 2:
                out.setdefault(student, {})[variant] = compare(accs, others, bar)
    return out


def table(students: dict, bar: float) -> str:
    lines = [
        f"| student | trained on | new mean ± sd (n) | base mean ± sd (n) | new - base (pp) "
        f"| {LEVEL:.0%} interval (pp) | against -{100 * bar:g} pp |",
        "|---|---|---|---|---|---|---|",
    ]
    for student, variants in students.items():
        for variant, c in variants.items():
            new, base = c["new"], c["base"]
            low, high = (100 * v for v in c["interval"])
            standing = c["standing"]
            if c["draws_needed"] is not None:
                standing += f" (~{c['draws_needed']} draws a side)"
            lines.append(
                f"| {student} | {variant} | {new['mean']:.4f} ± {new['sd']:.4f} ({new['n']}) "
                f"| {base['mean']:.4f} ± {base['sd']:.4f} ({base['n']}) "
                f"| {100 * c['difference']:+.2f} | [{low:+.2f}, {high:+.2f}] | {standing} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, nargs="+", help="draws of the new code or setting")
    parser.add_argument("--base", type=Path, nargs="+", required=True, help="draws of the base")
    parser.add_argument("--with", dest="extra", type=Path, nargs="*", default=[])
    parser.add_argument("--base-with", dest="base_extra", type=Path, nargs="*", default=[])
    parser.add_argument("--bar", type=float, default=0.01, help="most accuracy the new may lose")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not 0 < args.bar < 1:
        raise SystemExit(f"--bar is an accuracy difference in (0, 1), got {args.bar}")
    new_runs = side_runs(args.sweep, args.extra)
    base_runs = side_runs(args.base, args.base_extra)
    students = difference(new_runs, base_runs, args.bar)
    if not students:
        raise SystemExit("no student has at least 2 draws on both sides")
    command = "python -m experiments.draw_difference " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    write_json(
        args.out,
        {
            "command": command,
            "bar": args.bar,
            "level": LEVEL,
            "new": list(new_runs),
            "base": list(base_runs),
            "students": students,
        },
    )
    print(table(students, args.bar))


if __name__ == "__main__":
    main()
