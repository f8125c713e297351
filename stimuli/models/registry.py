"""Name → model class, so configs and the CLI can pick a network by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

MODELS: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: `@register("cnn")` puts the class in `MODELS` under `name`."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {MODELS[name]!r}")
        MODELS[name] = cls
        return cls

    return deco


def list_models() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, n_chans: int, n_outputs: int, n_times: int, **kwargs: Any) -> nn.Module:
    try:
        cls = MODELS[name]
    except KeyError:
        known = ", ".join(list_models())
        raise KeyError(f"unknown model {name!r}; registered models: {known}") from None
    return cls(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times, **kwargs)
