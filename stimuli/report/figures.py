"""Report figures: arrays in, a matplotlib `Figure` out.

Figures are built without pyplot, each on its own Agg canvas: no global backend switch, no
figure registry to leak, safe in threads; W&B's logger can take them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.signal import welch
from sklearn.metrics import confusion_matrix

from stimuli.report.canvas import (
    _classes,
    _empty,
    _grid,
    _names,
    _of_class,
    new_figure,
)

REAL, STIM, KD = "#1f77b4", "#d62728", "#ff7f0e"
VARIANT_COLORS = {"real": REAL, "stimuli": STIM, "stimuli_kd": KD}
MAX_PER_CLASS = 2000  # windows per class used for means and spectra (random, fixed seed)


def _channel_class_axes(
    n_chans: int, channel_names: Sequence[str] | None, cols: int
) -> tuple[Figure, np.ndarray, list[str]]:
    """Rows are channels; `cols` columns (classes, or classes x sets)."""
    chans = _names(channel_names, n_chans, "channel")
    fig = new_figure(figsize=(3.2 * cols, 1.9 * n_chans + 0.6))
    return fig, np.array(fig.subplots(n_chans, cols, squeeze=False, sharex=True)), chans


def stimulus_examples(
    stim_x: np.ndarray,
    stim_labels: np.ndarray,
    real_x: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
    *,
    fs: float,
    channel_names: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    n_examples: int = 3,
) -> Figure:
    """A few stimuli beside a few real windows of the same class; rows are channels.

    Columns: per class, stimuli (then real windows when given). Axes: channels x classes x sets.
    """
    classes = _classes(stim_labels, real_labels, label_names=label_names)
    sets = [("stimuli", stim_x, stim_labels, STIM)]
    if real_x is not None and real_labels is not None:
        sets.append(("real", real_x, real_labels, REAL))
    fig, axes, chans = _channel_class_axes(stim_x.shape[1], channel_names, len(classes) * len(sets))
    t = np.arange(stim_x.shape[-1]) / fs
    for k, cls in enumerate(classes):
        for j, (name, x, y, color) in enumerate(sets):
            col = k * len(sets) + j
            picked = _of_class(x, y, k, first=n_examples)
            for c, chan in enumerate(chans):
                ax = axes[c, col]
                if picked is None:
                    _empty(ax, f"no {name} windows")
                else:
                    for i, w in enumerate(picked):
                        ax.plot(t, w[c], color=color, lw=0.8, alpha=1.0 - 0.25 * i)
                if c == 0:
                    ax.set_title(f"{cls}: {name}", fontsize=10)
                if col == 0:
                    ax.set_ylabel(chan)
                if c == len(chans) - 1:
                    ax.set_xlabel("time (s)")
    return fig


def _class_sets(n_classes, stim_x, stim_labels, real_x, real_labels):
    """(class index, set name, windows of that class, colour) for real windows, then stimuli."""
    for k in range(n_classes):
        sets = [("real", real_x, real_labels, REAL), ("stimuli", stim_x, stim_labels, STIM)]
        for name, x, y, color in sets:
            picked = _of_class(x, y, k, MAX_PER_CLASS)
            if picked is not None:
                yield k, name, picked, color


def _label_class_axes(axes, classes, chans, title: str, ylabel: str, xlabel: str) -> None:
    """Titles and legends on the top row, channel names on the left, `xlabel` at the bottom."""
    for k, cls in enumerate(classes):
        for c, chan in enumerate(chans):
            ax = axes[c, k]
            if c == 0:
                ax.set_title(f"{cls}: {title}", fontsize=10)
                if ax.lines:
                    ax.legend(fontsize=7, loc="upper right")
            if k == 0:
                ax.set_ylabel(ylabel.format(chan))
            if c == len(chans) - 1:
                ax.set_xlabel(xlabel)


def class_means(
    stim_x: np.ndarray,
    stim_labels: np.ndarray,
    real_x: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
    *,
    fs: float,
    channel_names: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
) -> Figure:
    """Per class and channel, mean ± sd over windows: stimuli vs real. Axes: channels x classes."""
    classes = _classes(stim_labels, real_labels, label_names=label_names)
    fig, axes, chans = _channel_class_axes(stim_x.shape[1], channel_names, len(classes))
    t = np.arange(stim_x.shape[-1]) / fs
    for k, name, picked, color in _class_sets(
        len(classes), stim_x, stim_labels, real_x, real_labels
    ):
        mean, sd = picked.mean(0), picked.std(0)
        for c in range(len(chans)):
            ax = axes[c, k]
            ax.plot(t, mean[c], color=color, lw=1.0, label=f"{name} (n={len(picked)})")
            ax.fill_between(t, mean[c] - sd[c], mean[c] + sd[c], color=color, alpha=0.2)
    _label_class_axes(axes, classes, chans, "mean ± sd", "{}", "time (s)")
    return fig


def power_spectra(
    stim_x: np.ndarray,
    stim_labels: np.ndarray,
    real_x: np.ndarray | None = None,
    real_labels: np.ndarray | None = None,
    *,
    fs: float,
    channel_names: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
) -> Figure:
    """Mean Welch spectrum per class and channel, stimuli vs real. Axes: channels x classes."""
    classes = _classes(stim_labels, real_labels, label_names=label_names)
    fig, axes, chans = _channel_class_axes(stim_x.shape[1], channel_names, len(classes))
    nperseg = min(stim_x.shape[-1], 256)
    for k, name, picked, color in _class_sets(
        len(classes), stim_x, stim_labels, real_x, real_labels
    ):
        f, pxx = welch(picked, fs=fs, nperseg=nperseg, axis=-1)
        power = pxx.mean(0)
        for c in range(len(chans)):
            axes[c, k].semilogy(f[1:], power[c, 1:] + 1e-12, color=color, lw=1.0, label=name)
    _label_class_axes(axes, classes, chans, "power spectrum", "{}\npower", "frequency (Hz)")
    return fig


def confusion_matrices(
    predictions: Mapping[str, tuple[np.ndarray, np.ndarray]],
    label_names: Sequence[str] | None = None,
    ncols: int = 4,
) -> Figure:
    """One panel per model: counts, with the share of each true class in brackets."""
    ys = [np.asarray(a) for pair in predictions.values() for a in pair]
    classes = _classes(*ys, label_names=label_names)
    fig, axes = _grid(len(predictions), ncols, w=3.3, h=3.0)
    for ax, (name, (y_true, y_pred)) in zip(axes, predictions.items()):
        cm = confusion_matrix(y_true, y_pred, labels=range(len(classes)))
        share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (i, j), n in np.ndenumerate(cm):
            color = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{n}\n({share[i, j]:.0%})", ha="center", va="center", color=color)
        acc = float(np.trace(cm)) / max(int(cm.sum()), 1)
        ax.set_title(f"{name} (acc {acc:.3f})", fontsize=10)
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    return fig


def _shared_legend(fig: Figure, ax: Axes) -> None:
    """One legend above all panels, so it never hides a bar."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper center", ncols=len(handles), fontsize=8)


def _bar_groups(
    ax: Axes, groups: Sequence[str], bars: Mapping[str, Sequence[float]], colors: Mapping
) -> None:
    width = 0.8 / max(len(bars), 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(bars.items()):
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, values, width, label=name, color=colors.get(name))
        for p, v in zip(pos, values):
            if np.isfinite(v) and len(groups) * len(bars) <= 24:  # else unreadably dense
                ax.text(p, v, f"{v:.2f}", ha="center", va="bottom" if v >= 0 else "top", fontsize=7)
    ax.set_xticks(x, groups)
    ax.axhline(0, color="0.3", lw=0.6)
    low = min([0.0, *(float(np.nanmin(v)) for v in bars.values() if np.isfinite(v).any())])
    ax.set_ylim(low - 0.08, 1.1)


def _metric(block: Mapping, variant: str, metric: str) -> float:
    value = (block.get(variant) or {}).get(metric)
    return float(value) if isinstance(value, int | float) else np.nan


def variants_of(students: Mapping[str, Mapping]) -> list[str]:
    """The training sets present (real, stimuli, stimuli_kd, ...), real first, gaps excluded."""
    found = {v for b in students.values() for v in b if not v.startswith("gap")}
    order = ["real", "stimuli", "stimuli_kd"]
    return sorted(found, key=lambda v: (order.index(v) if v in order else len(order), v))


def utility_bars(
    students: Mapping[str, Mapping], teacher: Mapping[str, float] | None = None
) -> Figure:
    """Accuracy and kappa per student, one bar per training set. Axes: 2 (acc, kappa)."""
    names, variants = list(students), variants_of(students)
    width = min(16.0, max(6.0, 1.2 * len(names) * max(len(variants), 1) + 2))
    fig = new_figure(figsize=(width, 3.4))
    for ax, metric in zip(fig.subplots(1, 2), ("acc", "kappa")):
        bars = {v: [_metric(students[n], v, metric) for n in names] for v in variants}
        _bar_groups(ax, names, bars, VARIANT_COLORS)
        if teacher and metric in teacher:
            ax.axhline(teacher[metric], color="0.2", ls="--", lw=1, label="teacher")
        ax.set_title(f"students on real test persons: {metric}", fontsize=10)
    _shared_legend(fig, ax)
    return fig


def sweep_bars(jobs: Mapping[str, Mapping[str, Mapping]], metric: str = "acc") -> Figure:
    """Per student a panel: per job (x), real vs stimuli(/kd) `metric`. Axes: one per student."""
    students = list(dict.fromkeys(s for block in jobs.values() for s in block))
    variants = variants_of({f"{j}/{s}": b[s] for j, b in jobs.items() for s in b})
    width = min(14.0, max(4.0, 0.9 * len(jobs) * len(variants) + 1.5))
    fig, axes = _grid(len(students), 2 if width <= 7 else 1, w=width, h=3.0)
    for ax, student in zip(axes, students):
        bars = {v: [_metric(jobs[j].get(student, {}), v, metric) for j in jobs] for v in variants}
        _bar_groups(ax, [str(j) for j in jobs], bars, VARIANT_COLORS)
        ax.set_title(f"{student}: {metric}", fontsize=10)
        ax.set_xlabel("job")
    if axes:
        _shared_legend(fig, axes[0])
    return fig


def loss_curves(history: Mapping[str, Sequence[float]], ncols: int = 3) -> Figure:
    """Synthesis loss per step, one panel per term (their scales differ by orders)."""
    fig, axes = _grid(len(history), ncols, w=3.4, h=2.4)
    for ax, (term, values) in zip(axes, history.items()):
        v = np.asarray(values, dtype=np.float64)
        ax.plot(np.arange(1, len(v) + 1), v, color=STIM, lw=1)
        if len(v) and np.all(v[np.isfinite(v)] > 0):
            ax.set_yscale("log")
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("step")
    return fig


def training_curves(curves: Mapping[str, Sequence[tuple[float, float]]], ncols: int = 3) -> Figure:
    """One panel per logged series of (step, value) pairs."""
    fig, axes = _grid(len(curves), ncols, w=3.4, h=2.4)
    for ax, (name, points) in zip(axes, curves.items()):
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        ax.plot(pts[:, 0], pts[:, 1], color=REAL, lw=1, marker="." if len(pts) < 40 else None)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
    return fig
