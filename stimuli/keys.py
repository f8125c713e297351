"""Cache keys of the stages: a hash of the configs that determine each stage's output.

Which settings of a node enter a key is the schema's to say (`stimuli.schema`: `key` and
`omit_if` per field), so a sweep over students trains the teacher, the identity model and the
stimuli once, and a new setting is hashed as soon as it is declared.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from stimuli.config import plain_config
from stimuli.schema import (
    WEIGHTS_OMIT_IF,
    IdentityConfig,
    SoftLabelsConfig,
    StudentDefaultsConfig,
    SynthesisConfig,
    TeacherConfig,
    key_settings,
)

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
    blob = json.dumps(
        [_canonical_numbers(plain_config(p)) for p in parts], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def data_identity(cfg: DictConfig) -> dict:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data["root"] = str(Path(data["root"]).expanduser().resolve())
    if not data.get("attacker_nights"):  # off: the keys of runs from before the setting
        data.pop("attacker_nights", None)
    return {k: v for k, v in data.items() if k not in _DATA_IGNORED}


def synthesis_key_settings(cfg: DictConfig) -> dict:
    """The synthesis settings the stimuli's key hashes; with the competition term on, also the
    settings of the competitor student it trains (`student_defaults`)."""
    synthesis = key_settings(SynthesisConfig, plain_config(cfg.synthesis))
    synthesis["weights"] = {
        k: v
        for k, v in synthesis["weights"].items()
        if not (k in WEIGHTS_OMIT_IF and v == WEIGHTS_OMIT_IF[k])
    }
    if not synthesis["weights"].get("competition"):
        synthesis.pop("competitor_steps", None)
    else:
        synthesis["competitor"] = key_settings(
            StudentDefaultsConfig, plain_config(cfg.get("student_defaults") or {})
        )
    return synthesis


def soft_label_key_settings(cfg: DictConfig) -> dict:
    """The `soft_labels` settings the label teachers' key hashes (`adv_eps: null`, the setting's
    behaviour before it existed, is left out, so those entries stay valid)."""
    return key_settings(SoftLabelsConfig, plain_config(cfg.get("soft_labels") or {}))


# Part of the stimuli's cache key, bumped whenever the synthesis code's numbers change (by float
# rounding or more), so stimuli cached by older code are synthesized again. 2: the BN term's
# moments with their own backward (synthesis/moments.py); 3: the smoothing as one depthwise
# convolution (synthesis/parametrization.py).
SYNTHESIS_NUMERICS = 3


def stage_keys(cfg: DictConfig) -> dict[str, str]:
    data = data_identity(cfg)
    teacher_cfg = key_settings(TeacherConfig, plain_config(cfg.teacher))
    parts = [data, cfg.model, teacher_cfg, cfg.trainer, cfg.seed, cfg.get("callbacks")]
    teacher = config_hash("teacher", *parts)
    identity_cfg = key_settings(IdentityConfig, plain_config(cfg.identity))
    identity = config_hash("identity", data, identity_cfg, cfg.seed)
    stimuli = config_hash(
        "stimuli", teacher, identity, synthesis_key_settings(cfg), SYNTHESIS_NUMERICS
    )
    label_teachers = config_hash("label_teachers", teacher, soft_label_key_settings(cfg))
    return {
        "teacher": teacher,
        "identity": identity,
        "stimuli": stimuli,
        "label_teachers": label_teachers,
    }


def student_key(cfg: DictConfig, keys: dict[str, str], name: str, variant: str) -> str:
    """The cache key of student `name` fitted on `variant`: its node (resolved, so the shared
    `student_defaults` count) and what it learns from: the data split for `real`, the stimuli
    for `stimuli`, the stimuli and their soft labels for `stimuli_kd`. A student on real windows
    is therefore shared by every synthesis setting."""
    learns_from = {
        "real": [data_identity(cfg)],
        "stimuli": [keys["stimuli"]],
        "stimuli_kd": [keys["stimuli"], keys["label_teachers"]],
    }
    if variant not in learns_from:
        raise ValueError(f"no cache key for student variant {variant!r}")
    node = plain_config(cfg.students[name])
    return config_hash("student", name, variant, node, cfg.seed, *learns_from[variant])


def mechanism_hash(cfg: DictConfig) -> str:
    """The mechanism a release comes from: every setting that determines the release (data,
    model, teacher, identity model, synthesis, soft labels, trainer), without the person split,
    the run seed and the synthesis draw (`synthesis.draw`), which are draws of the mechanism, not
    parts of it (an audit draws the split and the seed anew for each of its splits). A verdict
    names its mechanism by this hash; a release looks its verdict up by it."""
    data = {k: v for k, v in data_identity(cfg).items() if k != "split"}
    synthesis = {k: v for k, v in synthesis_key_settings(cfg).items() if k != "draw"}
    return config_hash(
        "mechanism",
        data,
        cfg.model,
        key_settings(TeacherConfig, plain_config(cfg.teacher)),
        cfg.get("callbacks"),
        key_settings(IdentityConfig, plain_config(cfg.identity)),
        synthesis,
        soft_label_key_settings(cfg),
        {k: v for k, v in plain_config(cfg.trainer).items() if k in ("precision",)},
        (cfg.get("release") or {}).get("soft_labels", True),
    )
