"""Differentiable random augmentations of windows `(B, C, T)`: time shifts and amplitude scales.

Used by synthesis (before each teacher forward) and by the `Classifier` (while training).

Random numbers are drawn on the CPU from an explicit generator (reproducible whatever the device),
then moved to the stimuli's device.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor


def random_time_shift(
    x: Tensor,
    max_shift: int,
    generator: torch.Generator | None = None,
    mode: Literal["roll", "zero"] = "roll",
) -> Tensor:
    """Shift each sample of ``x`` ``(B, C, T)`` along time by an integer in
    ``[-max_shift, max_shift]``, circularly (``roll``) or filling with zeros (``zero``).
    Gradients flow to ``x``."""
    if max_shift <= 0:
        return x
    if mode not in ("roll", "zero"):
        raise ValueError(f"mode must be 'roll' or 'zero', got {mode!r}")
    b, _, t = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 1), generator=generator)
    src = torch.arange(t).unsqueeze(0) - shifts  # output[t] = input[t - shift]
    if mode == "roll":
        src = src.remainder(t)
        return x.gather(2, src.to(x.device).unsqueeze(1).expand_as(x))
    valid = (src >= 0) & (src < t)
    src = src.clamp(0, t - 1).to(x.device).unsqueeze(1).expand_as(x)
    return x.gather(2, src) * valid.to(device=x.device, dtype=x.dtype).unsqueeze(1)


def random_amplitude_scale(
    x: Tensor, max_rel: float, generator: torch.Generator | None = None
) -> Tensor:
    """Multiply each sample by ``1 + u``, ``u ~ U(-max_rel, max_rel)``."""
    if max_rel <= 0:
        return x
    u = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator)
    scale = 1.0 + (2.0 * u - 1.0) * max_rel
    return x * scale.to(device=x.device, dtype=x.dtype)
