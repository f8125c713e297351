"""Per-channel batch moments with a backward written for them: the BatchNorm-matching term's
cost on CPU.

`torch.var_mean` over the batch and time dimensions of `(B, C, T)` activations is a strided
Welford reduction, and its backward recomputes the mean and builds the gradient in several
full-size passes; with them the BN term took about a quarter of a synthesis step. Here the
forward is two passes (the mean, then the mean square of the centred activations, which it
keeps) and the backward one (`addcmul`): a shard 1.10x (1 thread) and 1.08x (2 threads) as fast,
arms alternated in one process (`python -m bench.bn_moments`). The values are those of
`var_mean` to float32 rounding (tests/test_synthesis_losses.py), not bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx


class _ChannelMoments(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor) -> tuple[Tensor, Tensor]:
        dims = [d for d in range(x.dim()) if d != 1]
        mean = x.mean(dims, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dims)
        ctx.save_for_backward(centred)
        return mean.flatten(), var

    @staticmethod
    def backward(ctx: FunctionCtx, grad_mean: Tensor | None, grad_var: Tensor | None) -> Tensor:
        (centred,) = ctx.saved_tensors
        n = centred.numel() // centred.shape[1]
        shape = (1, -1) + (1,) * (centred.dim() - 2)
        zeros = centred.new_zeros(centred.shape[1])
        gm = (zeros if grad_mean is None else grad_mean) / n
        gv = (zeros if grad_var is None else grad_var) * (2.0 / n)
        # d mean / dx = 1/n, d var / dx = 2 (x - mean) / n (the mean's own term sums to zero)
        return torch.addcmul(gm.view(shape), centred, gv.view(shape))


def channel_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and biased variance `(C,)` of `x` `(B, C, ...)` over every dimension but 1."""
    if x.dim() < 2:
        raise ValueError(
            f"channel_moments needs (B, C, ...) activations, got shape {tuple(x.shape)}"
        )
    return _ChannelMoments.apply(x)
