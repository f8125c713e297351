"""The schema of the config nodes that decide what a run computes and what its datacard says.

One dataclass per node (`synthesis`, `teacher`, `identity`, `soft_labels`, `student_defaults`,
`release`). The YAML files under `conf/` hold the values users edit; these classes give each
setting its type and say, per field (`setting(...)` metadata):

- `key`: whether it enters the cache key of the stage that owns the node (a setting that does
  not change the output, like a progress bar, does not);
- `public`: whether the release's datacard carries it;
- `omit_if`: a value at which the setting is left out of the cache key, so entries cached
  before the setting existed stay valid while it is unused.

`stimuli.keys` derives the cache keys and `stimuli.release.datacard` the datacard whitelist from
these fields, so a new setting is typed, hashed and documented in one place; `validate` checks a
composed config against them before anything runs (unknown keys, wrong types, impossible
values), naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

_NOT_SET = object()


def setting(
    default: Any = dataclasses.MISSING,
    *,
    key: bool = True,
    public: bool = False,
    omit_if: Any = _NOT_SET,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with this module's metadata (see the module docstring)."""
    metadata = {"key": key, "public": public, "omit_if": omit_if}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class ConfigError(ValueError):
    """A config value that cannot run; the message names the key and what is allowed."""


def _choice(node: str, name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{node}.{name}={value!r} is not allowed; use one of {list(allowed)}")


def _at_least(node: str, name: str, value: Any, low: float) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{node}.{name}={value!r} must be >= {low:g}")


# The synthesis loss terms and their default weights (0 skips a term).
DEFAULT_WEIGHTS: dict[str, float] = {
    "class": 1.0,
    "hidden": 0.0,
    "bn": 3.0,
    "tv": 1e-3,
    "l2": 1e-4,
    "identity_uniform": 1.0,
    "identity_mixture": 0.0,
    "identity_centroid": 0.0,
    "diversity": 0.0,
    "competition": 0.0,
}
# Weights left out of the stimuli's cache key at this value (added after caches existed).
WEIGHTS_OMIT_IF: dict[str, float] = {"identity_mixture": 0.0}


@dataclass
class SynthesisConfig:
    """`conf/synthesis/default.yaml`: stimulus synthesis (`stimuli.synthesis`)."""

    n: int = setting(1024, public=True)
    shard_size: int = setting(256, public=True)
    steps: int = setting(200, public=True)
    lr: float = setting(0.05, public=True)
    betas: tuple[float, float] = setting((0.5, 0.9), public=True)
    schedule: str = setting("cosine", public=True)
    targets: str = setting("soft", public=True)
    max_shift: int = setting(40, public=True)
    shift_mode: str = setting("roll", public=True)
    amp_jitter: float = setting(0.0, public=True)
    clip: tuple[float, float] | None = setting((-4.0, 4.0), public=True)
    smoothing: float = setting(2.0, public=True, omit_if=0)
    weights: dict[str, float] = setting(factory=lambda: dict(DEFAULT_WEIGHTS), public=True)
    hidden_top_frac: float = setting(0.25, public=True)
    centroid_space: str = setting("teacher", public=True)
    centroid_margin: float | None = setting(None, public=True)
    centroid_temperature: float = setting(0.1, public=True)
    # keyed only with weights.competition > 0 (see stimuli.keys)
    competitor_steps: int = setting(400, public=True)
    # Another draw of the same mechanism: shard i is seeded with seed + i + DRAW_SEED_STRIDE·draw
    # (stimuli.synthesis.synthesize). Keyed (other stimuli), not in the mechanism hash.
    draw: int = setting(0, omit_if=0)
    progress_bar: bool = setting(True, key=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ConfigError(
                f"unknown synthesis weights {unknown}; known: {list(DEFAULT_WEIGHTS)}"
            )
        self.weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in self.weights.items()}}
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.clip is not None:
            self.clip = (float(self.clip[0]), float(self.clip[1]))
        _choice("synthesis", "schedule", self.schedule, ("cosine", "constant"))
        _choice("synthesis", "targets", self.targets, ("soft", "hard"))
        _choice("synthesis", "shift_mode", self.shift_mode, ("roll", "zero"))
        _choice("synthesis", "centroid_space", self.centroid_space, ("teacher", "identity"))
        for name in ("n", "shard_size", "steps"):
            _at_least("synthesis", name, getattr(self, name), 1)
        _at_least("synthesis", "draw", self.draw, 0)
        for name in ("max_shift", "smoothing", "amp_jitter", "competitor_steps"):
            _at_least("synthesis", name, getattr(self, name), 0)

    @classmethod
    def from_any(cls, cfg: SynthesisConfig | Mapping[str, Any] | DictConfig | None):
        """Defaults overridden by `cfg` (missing weights keep their default); unknown keys other
        than `_`-prefixed ones and impossible values raise `ConfigError`."""
        if cfg is None:
            return cls()
        if isinstance(cfg, SynthesisConfig):
            return dataclasses.replace(cfg, weights=dict(cfg.weights))
        return build(cls, cfg, "synthesis")


@dataclass
class TeacherConfig:
    """`teacher:` in conf/config.yaml."""

    max_epochs: int = setting(15)
    patience: int = setting(15)
    lr: float = setting(2.0e-3)
    weight_decay: float = setting(1.0e-3)
    balanced: bool = setting(True)
    max_shift: int = setting(40)
    amp_jitter: float = setting(0.1)
    adv_eps: float = setting(0.01, omit_if=0)
    n_models: int = setting(1, omit_if=1)

    def __post_init__(self) -> None:
        _at_least("teacher", "max_epochs", self.max_epochs, 1)
        _at_least("teacher", "n_models", self.n_models, 1)


@dataclass
class IdentityConfig:
    """`identity:` in conf/config.yaml: the person-ID model of identity inhibition."""

    model: Any = setting(None)
    ensemble: list[Any] = setting(factory=list, omit_if=[])
    steps: int = setting(1000)
    batch_size: int = setting(128)
    lr: float = setting(2.0e-3)
    weight_decay: float = setting(1.0e-4)
    holdout: float = setting(0.3)
    max_shift: int = setting(0)
    adv_eps: float = setting(0.0, omit_if=0)

    def __post_init__(self) -> None:
        _at_least("identity", "steps", self.steps, 1)
        if not 0 < self.holdout < 1:
            raise ConfigError(f"identity.holdout={self.holdout!r} must lie strictly in (0, 1)")


@dataclass
class SoftLabelsConfig:
    """`soft_labels:` in conf/config.yaml: the stimuli's soft labels."""

    teachers: int = setting(2, public=True)
    seed_offset: int = setting(100)
    adv_eps: float | None = setting(None, omit_if=None)

    def __post_init__(self) -> None:
        _at_least("soft_labels", "teachers", self.teachers, 1)
        _at_least("soft_labels", "adv_eps", self.adv_eps, 0)


@dataclass
class StudentDefaultsConfig:
    """`student_defaults:` in conf/config.yaml; enters the stimuli's key only when the
    competition term trains a student during synthesis."""

    steps: int = setting(1500)
    batch_size: int = setting(128)
    lr: float = setting(1.0e-3)
    weight_decay: float = setting(1.0e-4)
    max_shift: int = setting(40)
    amp_jitter: float = setting(0.1)
    temperature: float = setting(2.0)
    mixup: float = setting(0.0)
    trainer: dict[str, Any] = setting(factory=dict, key=False)

    def __post_init__(self) -> None:
        _at_least("student_defaults", "steps", self.steps, 1)


@dataclass
class ReleaseConfig:
    """`release:` in conf/config.yaml (the copy-distance threshold is `privacy.copy`)."""

    soft_labels: bool = setting(True, public=True)
    check_identity_model: bool = setting(True)
    require_verdict: bool = setting(False)


@dataclass
class ObjectiveConfig:
    """`objective:` in conf/config.yaml: what `python -m stimuli.run` returns to a sweeper."""

    student: str | None = setting(None, key=False)
    variant: str = setting("stimuli_kd", key=False)
    metric: str = setting("kappa", key=False)
    split: str = setting("val", key=False)

    def __post_init__(self) -> None:
        _choice("objective", "split", self.split, ("val",))
        _choice("objective", "metric", self.metric, ("acc", "kappa", "auroc", "f1"))
        _choice("objective", "variant", self.variant, ("real", "stimuli", "stimuli_kd"))


SCHEMAS: dict[str, type] = {
    "synthesis": SynthesisConfig,
    "teacher": TeacherConfig,
    "identity": IdentityConfig,
    "soft_labels": SoftLabelsConfig,
    "student_defaults": StudentDefaultsConfig,
    "release": ReleaseConfig,
    "objective": ObjectiveConfig,
}


def build(schema: type, node: Any, where: str) -> Any:
    """`node` (a mapping or OmegaConf node) as an instance of `schema`, keys starting with `_`
    ignored. Unknown keys, wrong types and impossible values raise `ConfigError` naming
    `where.key`."""
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    raw = {k: v for k, v in dict(node or {}).items() if not str(k).startswith("_")}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), raw)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        known = [f.name for f in dataclasses.fields(schema)]
        raise ConfigError(
            f"unknown key {where}.{err.full_key}; the keys of {where}: {known}"
        ) from None
    except OmegaConfBaseException as err:
        reason = str(err).splitlines()[0]
        raise ConfigError(f"{where}.{getattr(err, 'full_key', '?')}: {reason}") from None


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Every schema'd node of a composed config, checked; returns the typed nodes."""
    return {name: build(schema, cfg.get(name), name) for name, schema in SCHEMAS.items()}


def public_fields(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema) if f.metadata.get("public")]


def key_settings(schema: type, node: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `node` that enter the owning stage's cache key: `key` fields, minus those
    still at their `omit_if` value. Keys the schema does not know are kept (a stage keyed on
    them must not silently ignore them)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    out = {}
    for name, value in node.items():
        f = fields.get(name)
        if f is None:
            out[name] = value
            continue
        if not f.metadata.get("key", True):
            continue
        omit = f.metadata.get("omit_if", _NOT_SET)
        if omit is not _NOT_SET and value == omit:
            continue
        out[name] = value
    return out
