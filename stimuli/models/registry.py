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


def build_network(model_cfg: Any, n_chans: int, n_outputs: int, n_times: int) -> nn.Module:
    """A network from a `conf/model` entry (a partial `_target_` taking the shape signature)."""
    from hydra.utils import instantiate

    return instantiate(model_cfg)(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times)


def model_parameters(model_cfg: Any) -> list[str]:
    """The hyperparameter names the `_target_` class of a `conf/model` entry accepts (its
    constructor's keyword arguments besides the shape signature)."""
    import inspect

    from hydra.utils import get_class

    target = model_cfg.get("_target_")
    if target is None:
        return []
    params = inspect.signature(get_class(target)).parameters
    return [p for p in params if p not in ("self", "n_chans", "n_outputs", "n_times")]


def member_file(index: int) -> str:
    """File name of member `index` of a cached ensemble (teachers, label teachers, identity
    models); member 0 keeps a single network's name."""
    return "model.pt" if index == 0 else f"model_{index}.pt"


def load_member(path: Any, model_cfg: Any, shape: tuple[int, int, int]) -> nn.Module:
    """A saved network of `model_cfg`, `shape` = (n_chans, n_outputs, n_times), in eval mode."""
    import torch

    model = build_network(model_cfg, *shape)
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return model.eval()
