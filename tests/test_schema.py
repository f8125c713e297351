"""The config schema: YAML defaults validate against it, cache keys and the datacard derive from
it, and bad settings fail at start naming the key."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from stimuli.pipeline import run_pipeline
from stimuli.release.datacard import SYNTHESIS_KEYS, make_datacard
from stimuli.schema import (
    DEFAULT_WEIGHTS,
    SCHEMAS,
    ConfigError,
    SynthesisConfig,
    build,
    public_fields,
    validate,
)
from tests.conftest import TINY, compose_config

# Nodes whose values are other configs (model configs, the trainer node), not schema defaults.
NESTED = {("identity", "model"), ("identity", "ensemble"), ("student_defaults", "trainer")}


def test_yaml_defaults_are_the_schema_and_validate(tmp_path):
    cfg = compose_config([], tmp_path, tmp_path)
    typed = validate(cfg)
    for name, schema in SCHEMAS.items():
        node = OmegaConf.to_container(cfg[name], resolve=True)
        fields = {f.name: f for f in dataclasses.fields(schema)}
        assert set(node) == set(fields), f"{name}: YAML keys differ from {schema.__name__}"
        default = schema()
        for key in fields:
            if (name, key) in NESTED:
                continue
            want = getattr(default, key)
            got = getattr(typed[name], key)
            assert got == want, f"{name}.{key}: YAML {got!r}, schema default {want!r}"


def test_every_public_synthesis_setting_reaches_the_datacard(tiny_run):
    assert "smoothing" in public_fields(SynthesisConfig)
    assert set(SYNTHESIS_KEYS) == set(public_fields(SynthesisConfig))
    card = json.loads((tiny_run.bundle / "datacard.json").read_text())
    assert set(card["synthesis"]) == set(public_fields(SynthesisConfig))
    assert set(card["synthesis"]["weights"]) == set(DEFAULT_WEIGHTS)
    assert "progress_bar" not in card["synthesis"]  # not public
    # the architecture: the keys its class accepts, nothing else
    assert card["teacher"]["architecture"]["_target_"] == "stimuli.models.cnn.CNN"


def test_datacard_leaves_out_settings_the_schema_does_not_make_public():
    arrays = {"x": np.zeros((2, 1, 8), np.float32), "labels": np.array([0, 1])}
    synthesis = {**dataclasses.asdict(SynthesisConfig()), "secret_path": "/data/a01"}
    model = {"_target_": "stimuli.models.cnn.CNN", "_partial_": True, "dropout": 0.1, "x": 1}
    card = make_datacard(
        arrays,
        channels=["rri"],
        fs=4.0,
        label_names=["N", "A"],
        normalize="record",
        synthesis=synthesis,
        model=model,
    )
    assert "secret_path" not in card["synthesis"] and "x" not in card["teacher"]["architecture"]
    assert card["teacher"]["architecture"]["dropout"] == 0.1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+synthesis.stepz=5", r"unknown key synthesis\.stepz; the keys of synthesis"),
        ("synthesis.steps=many", r"synthesis\.steps"),
        ("synthesis.steps=-3", r"synthesis\.steps=-3 must be >= 1"),
        ("synthesis.n=0", r"synthesis\.n=0 must be >= 1"),
        ("synthesis.schedule=linear", r"synthesis\.schedule='linear'.*cosine"),
        ("+synthesis.weights.colour=1", r"unknown synthesis weights \['colour'\]"),
        ("teacher.max_epochs=0", r"teacher\.max_epochs=0"),
        ("identity.holdout=1.5", r"identity\.holdout=1\.5"),
        ("objective.split=test", r"objective\.split='test'.*\['val'\]"),
    ],
)
def test_bad_settings_fail_at_start_naming_the_key(tmp_path, override, message):
    cfg = compose_config([*TINY, override], tmp_path / "out", tmp_path / "cache")
    with pytest.raises(ConfigError, match=message):
        run_pipeline(cfg)
    assert not (tmp_path / "cache").exists()  # nothing was computed


def test_build_gives_typed_settings():
    synth = build(SynthesisConfig, {"steps": "7", "betas": [0.1, 0.2]}, "synthesis")
    assert synth.steps == 7 and synth.betas == (0.1, 0.2)
    assert synth.weights == DEFAULT_WEIGHTS


def test_teacher_callbacks_come_from_the_callbacks_group(tmp_path):
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from stimuli.training import instantiate_callbacks

    cfg = compose_config([], tmp_path, tmp_path)
    callbacks = instantiate_callbacks(cfg.callbacks, str(tmp_path / "ckpt"))
    assert [type(c) for c in callbacks] == [ModelCheckpoint, EarlyStopping]
    assert callbacks[0].dirpath == str(tmp_path / "ckpt") and callbacks[0].monitor == "val/kappa"
    assert callbacks[1].patience == cfg.teacher.patience  # interpolated from teacher.patience
    only_stop = {
        "early_stopping": OmegaConf.to_container(cfg.callbacks.early_stopping, resolve=True)
    }
    with pytest.raises(ValueError, match="need a ModelCheckpoint"):
        instantiate_callbacks(only_stop, str(tmp_path))


def test_a_window_longer_than_every_record_fails_before_training(tmp_path):
    from stimuli.data.recording import CohortError

    cfg = compose_config([*TINY, "data.window_s=200000"], tmp_path / "out", tmp_path / "cache")
    with pytest.raises(CohortError, match=r"no windows.*shorten data\.window_s"):
        run_pipeline(cfg)
    assert not (tmp_path / "cache" / "stages").exists()  # nothing trained


def test_a_channel_alias_that_matches_nothing_fails_before_training(tmp_path):
    from stimuli.data.recording import CohortError

    overrides = [*TINY, "data.channels.airflow=[NoSuchChannel]"]
    cfg = compose_config(overrides, tmp_path / "out", tmp_path / "cache")
    with pytest.raises(CohortError, match=r"\.edf: no channel for 'airflow'.*NoSuchChannel"):
        run_pipeline(cfg)
    assert not (tmp_path / "cache" / "stages").exists()
