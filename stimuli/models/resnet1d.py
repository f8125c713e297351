"""A small 1-D ResNet: a strided stem, then stages of basic residual blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stimuli.models.registry import register


class BasicBlock1d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel_size, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm1d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register("resnet1d")
class ResNet1d(nn.Module):
    """Stem conv (stride 2) + max pool (stride 2), then one stage per entry of `channels`, each
    stage after the first halving the length. With an odd kernel and `kernel // 2` padding every
    stride-2 step maps L to ceil(L / 2), so no length ever reaches zero."""

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        channels: Sequence[int] = (24, 48, 96),
        blocks_per_stage: int = 1,
        kernel_size: int = 7,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.stem = nn.Sequential(
            nn.Conv1d(n_chans, channels[0], kernel_size, 2, kernel_size // 2, bias=False),
            nn.BatchNorm1d(channels[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, stride=2, padding=1),
        )
        blocks: list[nn.Module] = []
        in_ch = channels[0]
        for i, out_ch in enumerate(channels):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock1d(in_ch, out_ch, kernel_size, stride))
                in_ch = out_ch
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.dropout = nn.Dropout(dropout)
        self.embedding_dim: int = in_ch
        self.classifier = nn.Linear(in_ch, n_outputs)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.pool(self.stages(self.stem(x))).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
