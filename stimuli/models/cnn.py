"""The default teacher: a plain convolutional net with BatchNorm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stimuli.models.registry import register


class _GroupMax(torch.autograd.Function):
    """Max over the last dimension of `(..., groups, k)` as `Tensor.max(dim=-1)` computes it:
    the same values, and the gradient routed to the first maximum of each group (scatter into
    zeros, as max's own backward does). On CPU, torch's max-with-indices over a dimension of 4
    runs at about a third of the speed of k - 1 elementwise maxima over strided views, which is
    how this computes it; the index of the winner is kept as uint8
    (bench/results/cnn_block_threads1.json).
    A NaN wins `max` but not this index; only the gradient of a NaN group would differ."""

    @staticmethod
    def forward(ctx, groups: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        best = groups[..., 0]
        winner = torch.zeros(best.shape, dtype=torch.uint8, device=groups.device)
        for j in range(1, groups.shape[-1]):
            candidate = groups[..., j]
            # strictly greater: a tie keeps the earlier sample, as `max` does; j grows, so the
            # larger of the two indices is the latest strict winner
            winner = torch.maximum(winner, (candidate > best).view(torch.uint8) * j)
            best = torch.maximum(best, candidate)
        ctx.save_for_backward(winner)
        ctx.groups_shape = groups.shape
        return best

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (winner,) = ctx.saved_tensors
        index = winner.long().unsqueeze(-1)
        return grad.new_zeros(ctx.groups_shape).scatter_(-1, index, grad.unsqueeze(-1))


class GroupMax1d(nn.Module):
    """`nn.MaxPool1d(k)` (stride k, a remainder shorter than k dropped) as a max over groups of
    k samples, placed before the ReLU it would follow: ReLU and max commute, and where the max
    is not positive the ReLU stops the gradient either way, so values and gradients are those of
    ReLU → MaxPool1d, bit for bit (tests/test_models.py). It is faster on CPU: the ReLU sees k
    times fewer samples, and the max is taken by elementwise maxima (`_GroupMax`), not by
    torch's CPU max_pool1d or max-with-indices, which are slower (bench/results/cnn_block.json).
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        usable = x.shape[-1] // k * k
        return _GroupMax.apply(x[..., :usable].unflatten(-1, (-1, k)))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


@register("cnn")
class CNN(nn.Module):
    """Blocks of Conv1d (same padding) → BatchNorm1d → ReLU → MaxPool1d, then global average
    pooling, dropout and a linear classifier. (A block pools before its ReLU, with
    `GroupMax1d`: the same values and gradients as ReLU → MaxPool1d, in less time.)

    A block pools only while the remaining length is at least `pool_size`, decided from
    `n_times` at construction, so inputs as short as 60 samples still work.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        channels: Sequence[int] = (16, 32, 64, 64),
        kernel_size: int = 7,
        pool_size: int = 4,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("channels must name at least one block")
        layers: list[nn.Module] = []
        in_ch, length = n_chans, n_times
        for out_ch in channels:
            # bias=False: BatchNorm's shift makes a conv bias redundant (its gradient is zero).
            layers += [
                nn.Conv1d(in_ch, out_ch, kernel_size, padding="same", bias=False),
                nn.BatchNorm1d(out_ch),
            ]
            if length >= pool_size:
                layers.append(GroupMax1d(pool_size))
                length //= pool_size
            layers.append(nn.ReLU(inplace=True))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.dropout = nn.Dropout(dropout)
        self.embedding_dim: int = in_ch
        self.classifier = nn.Linear(in_ch, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.pool(self.features(x)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
