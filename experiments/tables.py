"""Cells of the experiments' Markdown tables."""

from __future__ import annotations


def acc_kappa(metrics: dict) -> str:
    """`acc / kappa` of a metrics block, three decimals each."""
    return f"{metrics['acc']:.3f} / {metrics['kappa']:.3f}"
