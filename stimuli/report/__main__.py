"""`python -m stimuli.report RUN_DIR` | `python -m stimuli.report --sweep SWEEP_DIR`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stimuli.report.inputs import inputs_from_run_dir
from stimuli.report.render import load_results, write_report
from stimuli.report.sweep import write_sweep_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stimuli.report",
        description="Write report.html for a finished run folder (from its results.json and "
        "stimuli.npz), or sweep_report.html for a Hydra multirun folder.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("run_dir", nargs="?", help="a finished run folder (holds results.json)")
    target.add_argument("--sweep", metavar="SWEEP_DIR", help="a multirun folder (0/, 1/, ...)")
    args = parser.parse_args(argv)
    try:
        if args.sweep:
            path = write_sweep_report(args.sweep)
        else:
            path = write_report(
                args.run_dir, load_results(args.run_dir), inputs_from_run_dir(args.run_dir)
            )
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
