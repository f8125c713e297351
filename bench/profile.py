"""Where a run's time goes: per stage, and inside synthesis and student training, by activity.

    python -m bench.profile [--rate 10] [hydra overrides ...]   # profile a default run
    python -m bench.profile --raw FILE                           # summarize a py-spy raw file

Runs `python -m bench.utility` (the `apnea_cnn` experiment on a fresh cache) under the py-spy
sampling profiler, then sorts every sample by the stage function on its stack (`data_stage`,
`teacher_stage`, ...) and, within synthesis and student training, by the first frame that names
an activity (teacher forward, BatchNorm hooks, identity model, smoothing, augmentation, loss
terms, backward, optimizer, Lightning logging, the rest of Lightning's loop, data loading).
Shares are of the samples in that stage (wall-clock, the main thread). Writes
`bench/results/profile.json`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from stimuli.io import write_json
from stimuli.paths import REPO_ROOT

STAGES = (
    "data_stage",
    "teacher_stage",
    "identity_stage",
    "stimuli_stage",
    "soft_labels_stage",
    "students_stage",
    "evaluate_stage",
    "privacy_stage",
    "release_stage",
    "report_stage",
)
# (activity, pattern on a frame "function (file:line)"), first match from the innermost frame.
SYNTHESIS_ACTIVITIES = (
    ("bn_hooks", r"synthesis/hooks\.py"),
    ("smoothing", r"synthesis/parametrization\.py"),
    ("augmentation", r"stimuli/augment\.py"),
    ("loss_terms", r"synthesis/losses\.py"),
    ("backward", r"(torch/_tensor\.py|torch/autograd/).*|^backward "),
    ("optimizer", r"torch/optim/"),
    ("logging", r"(\.log |logger_connector|/result\.py)"),
    ("progress_bar", r"(tqdm|progress)"),
)
STUDENT_ACTIVITIES = (
    ("augmentation", r"stimuli/augment\.py"),
    ("forward", r"stimuli/models/"),
    ("backward", r"(torch/_tensor\.py|torch/autograd/)"),
    ("optimizer", r"torch/optim/"),
    ("data_loading", r"torch/utils/data/"),
    ("logging", r"(\.log |logger_connector|/result\.py)"),
    ("features", r"students/features\.py"),
    ("scikit_learn", r"sklearn/"),
)


def parse_raw(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: `frame;frame;...;frame count`, outermost first."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def stage_of(frames: list[str]) -> str | None:
    for frame in frames:
        name = frame.split(" ", 1)[0]
        if name in STAGES:
            return name
    return None


def activity(
    frames: list[str], activities: tuple, inner: str, lightning: bool, identity_line: int = 0
) -> str:
    """The innermost activity a sample belongs to; model forwards inside synthesis are told apart
    by the line of `compute_terms` that called them (teacher first, then the identity model)."""
    callers = [f for f in frames if re.match(r"(\w+\.)?compute_terms ", f)]
    for frame in reversed(frames):
        if inner == "synthesis" and frame.startswith("_forward ") and callers:
            line = int(re.search(r":(\d+)\)", callers[-1]).group(1))
            return "teacher_forward" if line < identity_line else "identity_forward"
        for name, pattern in activities:
            if re.search(pattern, frame):
                return name
    if lightning and any("pytorch_lightning" in f for f in frames):
        return "lightning_loop_other"
    return "python_other"


def identity_call_line() -> int:
    """The line of `compute_terms` that runs the identity model (the teacher's runs before)."""
    import inspect

    from stimuli.synthesis import module

    lines, start = inspect.getsourcelines(module.StimulusGenerator.compute_terms)
    for i, text in enumerate(lines):
        if "id_logits, id_feats = _forward" in text:
            return start + i
    raise RuntimeError("compute_terms no longer calls the identity model through _forward")


def summarize(stacks: list[tuple[list[str], int]], rate: float) -> dict:
    identity_line = identity_call_line()
    per_stage: Counter = Counter()
    inside: dict[str, Counter] = defaultdict(Counter)
    for frames, count in stacks:
        stage = stage_of(frames) or "outside_stages"
        per_stage[stage] += count
        if stage == "stimuli_stage":
            kind = activity(frames, SYNTHESIS_ACTIVITIES, "synthesis", True, identity_line)
            inside["synthesis"][kind] += count
        elif stage == "students_stage":
            kind = "neural" if any("students/neural.py" in f for f in frames) else "classical"
            inside[f"students_{kind}"][
                activity(frames, STUDENT_ACTIVITIES, "students", kind == "neural")
            ] += count
    total = sum(per_stage.values())

    def shares(counter: Counter) -> dict:
        n = sum(counter.values())
        return {
            k: {"seconds": round(v / rate, 1), "share": round(v / n, 3)}
            for k, v in counter.most_common()
        }

    return {
        "sampled_seconds": round(total / rate, 1),
        "stages": shares(per_stage),
        "inside": {name: shares(counter) for name, counter in inside.items()},
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--raw", type=Path, help="summarize this py-spy raw file, run nothing")
    parser.add_argument("--rate", type=float, default=10.0, help="py-spy samples per second")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "bench" / "results" / "profile.json"
    )
    args, overrides = parser.parse_known_args(argv)
    raw = args.raw
    if raw is None:
        raw = Path(tempfile.mkdtemp()) / "run.raw"
        cmd = [
            "py-spy",
            "record",
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "-o",
            str(raw),
            "--",
            sys.executable,
            "-m",
            "bench.utility",
            *overrides,
        ]
        subprocess.run(cmd, cwd=REPO_ROOT, check=True)
    summary = {
        "command": "python -m bench.profile " + " ".join(overrides),
        "rate": args.rate,
        **summarize(parse_raw(raw), args.rate),
    }
    write_json(args.out, summary)
    for stage, row in summary["stages"].items():
        print(f"{stage:<20} {row['seconds']:>8.1f} s  {row['share']:.1%}")
    for name, rows in summary["inside"].items():
        print(f"\n{name}")
        for k, row in rows.items():
            print(f"  {k:<22} {row['seconds']:>8.1f} s  {row['share']:.1%}")


if __name__ == "__main__":
    main(sys.argv[1:])
