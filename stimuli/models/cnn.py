"""The default teacher: a plain convolutional net with BatchNorm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stimuli.models.registry import register


@register("cnn")
class CNN(nn.Module):
    """Blocks of Conv1d (same padding) → BatchNorm1d → ReLU → MaxPool1d, then global average
    pooling, dropout and a linear classifier.

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
                nn.ReLU(inplace=True),
            ]
            if length >= pool_size:
                layers.append(nn.MaxPool1d(pool_size))
                length //= pool_size
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
