"""A few stimuli of each class beside a few real windows of the held-out test persons.

    python -m experiments.figure_stimuli RUN_DIR [--out PNG] [--per-class 2] [--dpi 100]

RUN_DIR is a finished run folder (`python -m stimuli.run ...`) holding `stimuli.npz` (`x`
(N, C, T), `labels`) and `config_resolved.yaml`. The real windows are the test split of that
run's data config, rebuilt through its data module (the same person split, the same
normalization as the stimuli). The drawing is the report's `stimulus_examples`: rows are
channels, columns are classes x (stimuli, real). Windows are drawn at random per class; the
figure carries no record names or person ids.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.io import write_atomic
from stimuli.report.canvas import to_png
from stimuli.report.figures import stimulus_examples

DEFAULT_OUT = Path(__file__).parent / "figures" / "stimuli_vs_real.png"


def pick(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `per_class` random indices of each class, sorted by class."""
    picked = []
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        picked.append(rng.choice(idx, min(per_class, len(idx)), replace=False))
    return np.concatenate(picked) if picked else np.array([], dtype=np.int64)


def test_windows(run_dir: Path):
    """The run's data module (set up) and its test windows and labels."""
    cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    dm = instantiate(cfg.data, progress=False)
    dm.prepare_data()
    dm.setup()
    x, y, _ = dm.datasets["test"].arrays()  # person indices are not used
    return dm, x, np.asarray(y)


def figure(run_dir: Path, per_class: int = 2, seed: int = 0):
    with np.load(run_dir / "stimuli.npz") as f:
        stim_x, stim_y = f["x"], np.asarray(f["labels"])
    dm, real_x, real_y = test_windows(run_dir)
    if stim_x.shape[1:] != real_x.shape[1:]:
        raise SystemExit(
            f"{run_dir}: stimuli of shape {stim_x.shape[1:]} but test windows {real_x.shape[1:]}"
        )
    rng = np.random.default_rng(seed)
    s, r = pick(stim_y, per_class, rng), pick(real_y, per_class, rng)
    fig = stimulus_examples(
        stim_x[s],
        stim_y[s],
        real_x[r],
        real_y[r],
        fs=float(dm.fs),
        channel_names=list(dm.channels),
        label_names=list(dm.label_names),
        n_examples=per_class,
    )
    # one y range per channel row, so stimuli and real windows compare at a glance
    n_cols = len(fig.axes) // stim_x.shape[1]
    for row in range(stim_x.shape[1]):
        axes = fig.axes[row * n_cols : (row + 1) * n_cols]
        lo = min(ax.get_ylim()[0] for ax in axes)
        hi = max(ax.get_ylim()[1] for ax in axes)
        for ax in axes:
            ax.set_ylim(lo, hi)
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.8 * stim_x.shape[1])
    fig.suptitle(
        f"{per_class} stimuli (red) and {per_class} real windows of the held-out test persons "
        "(blue) per class",
        fontsize=11,
    )
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder holding stimuli.npz")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--per-class", type=int, default=2, help="windows per class and set")
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="which windows are drawn")
    args = parser.parse_args(argv)
    if not (args.run_dir / "stimuli.npz").is_file():
        raise SystemExit(f"{args.run_dir}: no stimuli.npz (run the synthesize stage first)")
    fig = figure(args.run_dir, args.per_class, args.seed)
    write_atomic(args.out, to_png(fig, dpi=args.dpi))
    print(args.out)


if __name__ == "__main__":
    main()
