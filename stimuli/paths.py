"""Where data, caches and outputs live, as OmegaConf resolvers the configs use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> str:
    """`STIMULI_DATA`, else `../shared/data` beside the repository when present, else `./data`."""
    env = os.environ.get("STIMULI_DATA")
    if env:
        return str(Path(env).expanduser().resolve())
    shared = REPO_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return str(shared)
    return str(REPO_ROOT / "data")


def cache_dir() -> str:
    env = os.environ.get("STIMULI_CACHE")
    return str(Path(env).expanduser().resolve()) if env else str(REPO_ROOT / ".cache")


def register_resolvers() -> None:
    for name, fn in {
        "stimuli.data_dir": data_dir,
        "stimuli.cache_dir": cache_dir,
        "stimuli.repo_root": lambda: str(REPO_ROOT),
    }.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
