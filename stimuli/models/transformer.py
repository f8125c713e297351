"""A small transformer encoder over non-overlapping patches of the window."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stimuli.models.registry import register


@register("transformer")
class TransformerNet(nn.Module):
    """Conv1d patch embedding → learnable positional embedding → pre-norm encoder → mean pool.

    The patch size is `ceil(n_times / max_tokens)`; the window is zero-padded on the right to a
    whole number of patches so no sample is dropped. The positional embedding is sized for
    exactly that many tokens, so the model only accepts inputs of `n_times` samples.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        max_tokens: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.n_times = n_times
        self.patch_size: int = max(1, math.ceil(n_times / max_tokens))
        self.n_tokens: int = math.ceil(n_times / self.patch_size)
        self.pad = self.n_tokens * self.patch_size - n_times
        self.patch_embed = nn.Conv1d(n_chans, d_model, self.patch_size, stride=self.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.n_tokens, d_model))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model,
            nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors only help with padding masks, and warn with norm_first.
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.embedding_dim: int = d_model
        self.classifier = nn.Linear(d_model, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_times:
            raise ValueError(f"expected {self.n_times} samples per window, got {x.shape[-1]}")
        if self.pad:
            x = F.pad(x, (0, self.pad))
        tokens = self.patch_embed(x).transpose(1, 2) + self.pos_embed  # (B, n_tokens, d_model)
        return self.dropout(self.norm(self.encoder(tokens)).mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
