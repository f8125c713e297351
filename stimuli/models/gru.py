"""Bidirectional GRU classifier; the architecture is shared with `stimuli.models.lstm`."""

from __future__ import annotations

from torch import nn

from stimuli.models.lstm import RecurrentNet
from stimuli.models.registry import register


@register("gru")
class GRUNet(RecurrentNet):
    cell = nn.GRU
