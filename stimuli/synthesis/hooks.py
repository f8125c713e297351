"""Forward hooks that expose what a frozen network computes while stimuli pass through it."""

from __future__ import annotations

from typing import Literal, Self

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.hooks import RemovableHandle

from stimuli.synthesis.moments import channel_moments


class BatchNormStatHook:
    """DeepInversion feature-statistics loss on every BatchNorm layer of ``model``.

    On each forward, for every BN layer with running statistics, records
    ``||mean_batch - running_mean||_2 + ||var_batch - running_var||_2`` of the layer's *input*
    (per channel, reduced over batch and time; biased variance as in DeepInversion;
    `channel_moments`). Each layer keeps only its latest value, so a second forward through the
    same model overwrites rather than accumulates. ``loss`` sums the layers.
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers: list[tuple[str, _BatchNorm]] = [
            (name, m)
            for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.running_mean is not None
        ]
        self.layer_losses: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = [
            m.register_forward_hook(self._make_hook(name)) for name, m in self.layers
        ]

    def _make_hook(self, name: str):
        def hook(module: _BatchNorm, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            mean, var = channel_moments(inputs[0])
            self.layer_losses[name] = torch.linalg.vector_norm(
                mean - module.running_mean
            ) + torch.linalg.vector_norm(var - module.running_var)

        return hook

    @property
    def loss(self) -> Tensor:
        if not self.layer_losses:
            return torch.zeros(())
        return torch.stack(list(self.layer_losses.values())).sum()

    def reset(self) -> None:
        self.layer_losses.clear()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class FeatureHook:
    """Captures the output (or first input) of the submodule ``name`` of ``model`` on forward.

    ``capture="input"`` on a model's final ``classifier`` yields the penultimate features in the
    same forward pass as the logits, so no second ``embed`` call is needed.
    """

    def __init__(
        self, model: nn.Module, name: str, capture: Literal["output", "input"] = "output"
    ) -> None:
        if capture not in ("output", "input"):
            raise ValueError(f"capture must be 'output' or 'input', got {capture!r}")
        self.module = model.get_submodule(name)
        self.capture = capture
        self.value: Tensor | None = None
        self._handle: RemovableHandle | None = self.module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        self.value = inputs[0] if self.capture == "input" else output

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
