"""A multilayer perceptron on the flattened window: the simplest student."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stimuli.models.registry import register


@register("mlp")
class MLP(nn.Module):
    """Flatten → (Linear → ReLU → Dropout) per entry of `hidden` → linear."""

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        hidden: Sequence[int] = (96, 64),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(1)]
        in_dim = n_chans * n_times
        for width in hidden:
            layers += [nn.Linear(in_dim, int(width)), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_dim = int(width)
        self.features = nn.Sequential(*layers)
        self.embedding_dim: int = in_dim
        self.classifier = nn.Linear(in_dim, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
