"""Cached stage outputs: a job whose inputs were already computed loads them instead.

Keys hash the configs that determine an output (data, model, stage settings, seed), so a sweep
over students trains the teacher, the identity model and the stimuli once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from stimuli.data.cache import build_once
from stimuli.io import read_json

# Data settings that do not change what is computed.
_DATA_IGNORED = {"cache_dir", "progress", "num_workers", "download", "waveforms", "physionet"}


def _canonical_numbers(obj: object) -> object:
    """Whole floats as ints, so `x=2` on the command line keys the same entry as `x: 2.0` in a
    config file (YAML and Hydra's override parser keep the two types apart)."""
    if isinstance(obj, dict):
        return {k: _canonical_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical_numbers(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    return obj


def config_hash(*parts: object) -> str:
    def plain(obj: object) -> object:
        if isinstance(obj, DictConfig | ListConfig):
            obj = OmegaConf.to_container(obj, resolve=True)
        return _canonical_numbers(obj)

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def data_identity(cfg: DictConfig) -> dict:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data["root"] = str(Path(data["root"]).expanduser().resolve())
    return {k: v for k, v in data.items() if k not in _DATA_IGNORED}


def _without_unset(node: dict, defaults: dict) -> dict:
    """`node` minus the entries that still hold the given default: settings added later are left
    out of cache keys while unused, so caches made before they existed stay valid."""
    return {k: v for k, v in node.items() if not (k in defaults and v == defaults[k])}


def stage_keys(cfg: DictConfig) -> dict[str, str]:
    data = data_identity(cfg)
    teacher_cfg = _without_unset(
        OmegaConf.to_container(cfg.teacher, resolve=True), {"adv_eps": 0, "n_models": 1}
    )
    teacher = config_hash("teacher", data, cfg.model, teacher_cfg, cfg.trainer, cfg.seed)
    identity_cfg = OmegaConf.to_container(cfg.identity, resolve=True)
    identity_cfg = _without_unset(identity_cfg, {"ensemble": [], "adv_eps": 0})
    identity = config_hash("identity", data, identity_cfg, cfg.seed)
    synthesis = OmegaConf.to_container(cfg.synthesis, resolve=True)
    synthesis.pop("progress_bar", None)
    synthesis = _without_unset(synthesis, {"smoothing": 0})
    synthesis["weights"] = _without_unset(synthesis["weights"], {"identity_mixture": 0})
    if not synthesis["weights"].get("competition"):
        synthesis.pop("competitor_steps", None)
    stimuli = config_hash("stimuli", teacher, identity, synthesis)
    label_teachers = config_hash("label_teachers", teacher, cfg.get("soft_labels") or {})
    return {
        "teacher": teacher,
        "identity": identity,
        "stimuli": stimuli,
        "label_teachers": label_teachers,
    }


def cached_stage(
    cache_dir: Path, stage: str, key: str, write: Callable[[Path], dict]
) -> tuple[Path, dict, bool]:
    """`write(folder) -> meta` runs only when `stage/key` is not cached yet."""

    def build(tmp: Path) -> None:
        meta = write(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))

    path, built = build_once(Path(cache_dir) / "stages" / stage, key, build)
    return path, read_json(path / "meta.json"), built
