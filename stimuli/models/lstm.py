"""Recurrent classifiers: a strided convolutional front end, then a bidirectional LSTM (GRU in
`stimuli.models.gru`, which reuses `RecurrentNet`)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import nn

from stimuli.models.registry import register


class RecurrentNet(nn.Module):
    """Conv front end → bidirectional RNN → pooled states → dropout → linear.

    The front end's stride is `ceil(n_times / max_steps)`, so the RNN sees at most `max_steps`
    steps: recurrent layers run step by step, and 1200 steps would be slow on a CPU.
    `pooling="mean"` averages the outputs over time; `"last"` concatenates the final
    forward and backward states of the top layer. Either way `embedding_dim = 2 * hidden_size`.
    """

    cell: type[nn.LSTM] | type[nn.GRU] = nn.LSTM

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        conv_channels: int = 32,
        max_steps: int = 150,
        hidden_size: int = 64,
        num_layers: int = 1,
        pooling: str = "mean",
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        stride = max(1, math.ceil(n_times / max_steps))
        self.n_steps: int = math.ceil(n_times / stride)
        self.frontend = nn.Sequential(
            nn.Conv1d(n_chans, conv_channels, 7, padding=3, bias=False),
            nn.BatchNorm1d(conv_channels),
            nn.ReLU(inplace=True),
            # kernel 2s+1, padding s, stride s: output length ceil(L / s) <= max_steps.
            nn.Conv1d(conv_channels, conv_channels, 2 * stride + 1, stride, stride, bias=False),
            nn.BatchNorm1d(conv_channels),
            nn.ReLU(inplace=True),
        )
        self.rnn = self.cell(
            conv_channels,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.embedding_dim: int = 2 * hidden_size
        self.classifier = nn.Linear(self.embedding_dim, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.frontend(x).transpose(1, 2)  # (B, steps, conv_channels)
        # cuDNN refuses RNN backward in eval mode, which stimulus synthesis needs (gradients
        # w.r.t. the input of a frozen teacher); fall back to the native kernel there. Only the
        # RNN runs inside, and `cudnn.flags` resets the other cuDNN flags, so use it only then.
        no_cudnn = h.is_cuda and not self.training and torch.is_grad_enabled()
        with torch.backends.cudnn.flags(enabled=False) if no_cudnn else nullcontext():
            out, state = self.rnn(h)
        if self.pooling == "mean":
            z = out.mean(dim=1)
        else:
            h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
            z = torch.cat([h_n[-2], h_n[-1]], dim=1)
        return self.dropout(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@register("lstm")
class LSTMNet(RecurrentNet):
    cell = nn.LSTM
