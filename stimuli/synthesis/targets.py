"""Class targets for a batch of stimuli, balanced by argmax."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def balanced_labels(n: int, n_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` int64 labels, each class ``n // n_classes`` times; the remainder goes to randomly
    chosen distinct classes; returned in random order."""
    base = torch.arange(n - n % n_classes) % n_classes
    extra = torch.randperm(n_classes, generator=generator)[: n % n_classes]
    labels = torch.cat([base, extra])
    return labels[torch.randperm(n, generator=generator)]


def make_targets(
    n: int,
    n_classes: int,
    mode: Literal["hard", "soft"] = "soft",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Target probabilities ``(n, n_classes)`` float32 whose argmax is balanced over classes.

    - ``hard``: one-hot.
    - ``soft``: drawn uniformly on the simplex (flat Dirichlet; for 2 classes ``p(class 1) ~
      U(0, 1)``), then the largest entry is swapped onto the assigned label, so targets span the
      whole range across the decision boundary while the argmax stays balanced.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    labels = balanced_labels(n, n_classes, generator)
    if mode == "hard":
        return torch.nn.functional.one_hot(labels, n_classes).float()
    if mode != "soft":
        raise ValueError(f"mode must be 'hard' or 'soft', got {mode!r}")
    # Normalised i.i.d. Exp(1) draws are Dirichlet(1, ..., 1).
    e = -torch.rand(n, n_classes, generator=generator).clamp_min(1e-12).log()
    p = e / e.sum(dim=1, keepdim=True)
    rows = torch.arange(n)
    top = p.argmax(dim=1)
    at_label = p[rows, labels].clone()
    p[rows, labels] = p[rows, top]
    p[rows, top] = at_label
    return p
