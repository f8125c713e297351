"""The audit of a mechanism (stimuli.audit): what names a mechanism, how its K splits run, and the
verdict in the release (`release.require_verdict`) and on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

from stimuli.audit import split_overrides
from stimuli.keys import mechanism_hash, stage_keys, student_key
from stimuli.pipeline import run_pipeline
from stimuli.pipeline.build_stages import label_teacher_settings
from stimuli.release.bundle import ReleaseRefused
from stimuli.schema import ConfigError, validate
from stimuli.store import ArtifactStore
from tests.conftest import REPO, TINY, TINY_RUN, compose_config


def cfg_with(tmp_path: Path, *overrides: str):
    return compose_config([*TINY, *overrides], tmp_path / "run", tmp_path / "cache")


def test_mechanism_hash_follows_synthesis_not_students_nor_split(tmp_path):
    base = mechanism_hash(cfg_with(tmp_path))
    assert mechanism_hash(cfg_with(tmp_path, "synthesis.steps=9")) != base
    assert mechanism_hash(cfg_with(tmp_path, "soft_labels.teachers=3")) != base
    assert mechanism_hash(cfg_with(tmp_path, "student_defaults.steps=11")) == base
    assert mechanism_hash(cfg_with(tmp_path, "data.split.seed=3")) == base  # the audit's draw
    assert mechanism_hash(cfg_with(tmp_path, "privacy.rules.auc_max=0.7")) == base
    assert mechanism_hash(cfg_with(tmp_path, "synthesis.draw=2")) == base  # another draw


def test_a_synthesis_draw_is_other_stimuli_and_draw_zero_keeps_the_old_key(tmp_path):
    cfg = cfg_with(tmp_path)
    keys = stage_keys(cfg)
    drawn = stage_keys(cfg_with(tmp_path, "synthesis.draw=1"))
    assert drawn["stimuli"] != keys["stimuli"]
    assert {k: v for k, v in drawn.items() if k != "stimuli"} == {
        k: v for k, v in keys.items() if k != "stimuli"
    }
    with open_dict(cfg):  # a config from before the setting: the same stimuli key
        del cfg.synthesis["draw"]
    assert stage_keys(cfg)["stimuli"] == keys["stimuli"]


def test_label_teachers_train_with_the_teachers_radius_unless_told_otherwise(tmp_path):
    cfg = cfg_with(tmp_path)
    assert cfg.teacher.adv_eps > 0 and label_teacher_settings(cfg) == cfg.teacher
    keys, mechanism = stage_keys(cfg), mechanism_hash(cfg)
    with open_dict(cfg):  # a config from before the setting: the same keys and mechanism
        del cfg.soft_labels["adv_eps"]
    assert stage_keys(cfg) == keys and mechanism_hash(cfg) == mechanism
    plain = cfg_with(tmp_path, "soft_labels.adv_eps=0")
    assert label_teacher_settings(plain).adv_eps == 0
    assert {**label_teacher_settings(plain), "adv_eps": cfg.teacher.adv_eps} == {**cfg.teacher}
    plain_keys = stage_keys(plain)
    assert plain_keys["label_teachers"] != keys["label_teachers"]
    assert {k: v for k, v in plain_keys.items() if k != "label_teachers"} == {
        k: v for k, v in keys.items() if k != "label_teachers"
    }
    assert mechanism_hash(plain) != mechanism  # other soft labels: another mechanism
    with pytest.raises(ConfigError, match=r"soft_labels\.adv_eps"):
        validate(cfg_with(tmp_path, "soft_labels.adv_eps=-0.1"))


def test_students_are_cached_by_what_they_learn_from(tmp_path):
    cfg, other = cfg_with(tmp_path), cfg_with(tmp_path, "synthesis.steps=9")
    keys, other_keys = stage_keys(cfg), stage_keys(other)
    for name in ("cnn", "logreg"):
        assert student_key(cfg, keys, name, "real") == student_key(other, other_keys, name, "real")
        for variant in ("stimuli", "stimuli_kd"):
            assert student_key(cfg, keys, name, variant) != student_key(
                other, other_keys, name, variant
            )
    assert len({student_key(cfg, keys, "cnn", v) for v in ("real", "stimuli", "stimuli_kd")}) == 3
    with pytest.raises(ValueError, match="variant 'wild'"):
        student_key(cfg, keys, "cnn", "wild")


def test_split_overrides_add_k_seeds_and_the_audits_stages(tmp_path):
    cfg = cfg_with(tmp_path, "audit.splits=3", "audit.first_seed=5")
    args = ["+experiment=apnea_resp", "audit.splits=3", "data.split.seed=9", "launcher=joblib"]
    out = split_overrides(cfg, args, tmp_path / "sweep")
    assert out[:2] == ["+experiment=apnea_resp", "launcher=joblib"]
    assert "data.split.seed=5,6,7" in out and f"hydra.sweep.dir={tmp_path / 'sweep'}" in out
    assert "stages=[data,teacher,synthesize,students,evaluate,privacy]" in out
    assert out.count("hard_labels=false") == 1  # the hard-label ablation is left out...
    kept = split_overrides(cfg, [*args, "hard_labels=true"], tmp_path / "sweep")
    assert "hard_labels=true" in kept and "hard_labels=false" not in kept  # ...unless asked for
    with pytest.raises(ValueError, match="at least 2 person splits"):
        split_overrides(cfg_with(tmp_path, "audit.splits=1"), [], tmp_path)


def test_require_verdict_refuses_without_one_and_the_card_carries_it(tiny_run, tmp_path):
    refuse = [*TINY_RUN, "stages=[release]", "release.require_verdict=true"]
    cfg = compose_config(refuse, tmp_path / "refused", tiny_run.cache)
    with pytest.raises(ReleaseRefused, match=r"has no verdict.*python -m stimuli\.audit"):
        run_pipeline(cfg)
    assert not (tmp_path / "refused" / "release" / "datacard.json").exists()
    verdict = {
        "anonymity": "established",
        "failing": [],
        "n_splits": 8,
        "mechanism": mechanism_hash(cfg),
        "rules": {"auc_max": 0.6},
        "criteria": {"dcr": {"pass": True, "powered": True, "valid": True, "release": {}}},
        "persons": [3, 5],  # whatever the file holds, the card takes only the whitelisted fields
    }
    path = ArtifactStore(Path(tiny_run.cache)).verdict_path(mechanism_hash(cfg))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(verdict))
    try:
        ok = compose_config(refuse, tmp_path / "released", tiny_run.cache)
        run_pipeline(ok)
        card = json.loads((tmp_path / "released" / "release" / "datacard.json").read_text())
        assert card["verdict"]["anonymity"] == "established" and card["verdict"]["n_splits"] == 8
        assert card["verdict"]["criteria"]["dcr"]["pass"] is True
        assert "persons" not in json.dumps(card["verdict"])
        path.write_text(json.dumps({**verdict, "anonymity": "not established"}))
        with pytest.raises(ReleaseRefused, match="is 'not established'"):
            run_pipeline(compose_config(refuse, tmp_path / "again", tiny_run.cache))
    finally:
        path.unlink()


@pytest.mark.slow
def test_audit_command_pools_two_tiny_splits_into_a_verdict_and_report(tiny_run, tmp_path):
    sweep = tmp_path / "sweep"
    args = [*TINY_RUN, f"paths.cache_dir={tiny_run.cache}", "audit.splits=2", f"audit.dir={sweep}"]
    subprocess.run([sys.executable, "-m", "stimuli.audit", *args], cwd=REPO, check=True)
    verdict = json.loads((sweep / "audit" / "verdict.json").read_text())
    assert verdict["n_splits"] == 2 and verdict["split_seeds"] == [0, 1]
    assert verdict["anonymity"] in ("established", "not established")
    assert set(verdict["criteria"]) == {"attribution", "in_out", "anonymeter", "dcr"}
    for block in verdict["criteria"].values():
        assert set(block["controls"]) == {"leaky", "leaky_balanced", "placebo"}
    cnn = verdict["utility"]["cnn"]["stimuli_kd"]["acc"]
    assert cnn["n"] == 2 and cnn["worst"] <= cnn["mean"]
    stored = ArtifactStore(Path(tiny_run.cache)).verdict_path(verdict["mechanism"])
    assert json.loads(stored.read_text()) == verdict
    html = (sweep / "audit" / "audit_report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "Anonymity" in html
    # each score's row; two tiny splits leave in/out without a calibrated person (no scores)
    scored = [c for c in ("attribution", "in_out") if "scores" in verdict["criteria"][c]["release"]]
    assert "attribution" in scored
    for criterion in scored:
        for score in verdict["criteria"][criterion]["release"]["scores"]:
            assert f">{score}</td>" in html
    stored.unlink()
    assert np.isfinite(verdict["auditor"]["top1_acc"])
