"""Composing the real Hydra config outside `@hydra.main` (benchmarks, experiments, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig, OmegaConf

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.paths import REPO_ROOT

CONF_DIR = REPO_ROOT / "conf"


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """`conf/<config_name>.yaml` with `overrides`.

    `paths.output_dir` defaults to `${hydra:runtime.output_dir}`, which only a Hydra run can
    resolve: override it when the config will be resolved.
    """
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def plain_config(cfg: Any) -> Any:
    """A plain (resolved) container of an OmegaConf node; any other value unchanged."""
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg
