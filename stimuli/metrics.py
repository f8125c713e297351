"""The metric blocks every report uses: accuracy, Cohen's kappa, AUROC, F1 (torchmetrics)."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryCohenKappa,
    BinaryF1Score,
)

# The metrics `score` returns (and every block of results.json holds), in report order.
METRIC_NAMES = ("acc", "kappa", "auroc", "f1")
# The metrics of a student's gap: its score trained on real windows minus on stimuli.
GAP_METRICS = ("acc", "kappa")
_METRICS = {
    "acc": BinaryAccuracy,
    "kappa": BinaryCohenKappa,
    "auroc": BinaryAUROC,
    "f1": BinaryF1Score,
}


def binary_metrics(prefix: str = "") -> MetricCollection:
    """Metrics over the probability of class 1 (apnea), one per `METRIC_NAMES`."""
    return MetricCollection({name: _METRICS[name]() for name in METRIC_NAMES}, prefix=prefix)


def score(probs: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> dict[str, float]:
    """`METRIC_NAMES` (acc, kappa, auroc, f1; rounded to 4 digits) of `(N, 2)` class
    probabilities (or `(N,)` P(apnea)) against labels `y`."""
    p = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    if p.ndim == 2:
        p = p[:, 1]
    target = torch.as_tensor(np.asarray(y), dtype=torch.long)
    metrics = binary_metrics()
    values = metrics(p, target)
    out = {k: round(float(v), 4) for k, v in values.items()}
    if len(torch.unique(target)) < 2:  # AUROC is undefined on one class
        out["auroc"] = float("nan")
    return out
