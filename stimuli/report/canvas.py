"""Figures without pyplot (each on its own Agg canvas), PNG bytes, and the small helpers every
report figure uses to lay out panels and pick windows of a class."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stimuli.data.datasets import RowView


def new_figure(**kwargs) -> Figure:
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _grid(n: int, ncols: int, w: float = 3.6, h: float = 2.6) -> tuple[Figure, list[Axes]]:
    """`n` panels in rows of `ncols`; unused cells are not created."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = new_figure(figsize=(w * ncols, h * nrows))
    return fig, [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]


def _names(names: Sequence[str] | None, n: int, prefix: str) -> list[str]:
    names = list(names or [])
    return [names[i] if i < len(names) else f"{prefix} {i}" for i in range(n)]


def _classes(*labels: np.ndarray | None, label_names: Sequence[str] | None) -> list[str]:
    top = max((int(np.max(y)) + 1 for y in labels if y is not None and len(y)), default=0)
    return _names(label_names, max(top, len(label_names or [])), "class")


def _of_class(
    x: np.ndarray | RowView | None,
    y: np.ndarray | None,
    k: int,
    limit: int | None = None,
    first: int | None = None,
):
    """The windows of class `k` as float64: at most `limit` of them drawn at random (fixed seed),
    or the `first` ones; only those rows are read from a `RowView`."""
    if x is None or y is None:
        return None
    idx = np.flatnonzero(np.asarray(y) == k)
    if first is not None:
        idx = idx[:first]
    if limit is not None and len(idx) > limit:
        idx = np.sort(np.random.default_rng(k).choice(idx, limit, replace=False))
    return np.asarray(x[idx], dtype=np.float64) if len(idx) else None


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


__all__ = ["_classes", "_empty", "_grid", "_names", "_of_class", "new_figure", "to_png"]
