"""The other-night attacker (`privacy.attacker_nights=true`): of every person with several
recordings, one is withheld from the owner's whole pipeline and is the attacker's recording of
that person; criteria 1-2 run for that attacker too. On the real closed-rri cohort (slp01 and
slp02 each have two recordings)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from hydra.utils import instantiate

from stimuli.data.recording import CohortError
from stimuli.keys import data_identity, mechanism_hash, stage_keys
from stimuli.pipeline import run_pipeline
from stimuli.privacy.person_scores import ATTRIBUTION_SCORES
from stimuli.privacy.verdict import CRITERIA, OTHER_NIGHT, verdict
from stimuli.release.datacard import privacy_summary
from tests.conftest import TINY, compose_config
from tests.test_privacy import RULES, fake_split

OTHER = ["+experiment=apnea_rri_closed", *TINY[1:], "threads=1", "privacy.attacker_nights=true"]


def dm_of(cfg):
    dm = instantiate(cfg.data, progress=False)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def other_night_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny closed-rri run with the other-night attacker, up to its privacy stage."""
    out, cache = tmp_path_factory.mktemp("other-night"), tmp_path_factory.mktemp("cache")
    cfg = compose_config([*OTHER, "stages=[data,teacher,synthesize,privacy]"], out, cache)
    results = json.loads(json.dumps(run_pipeline(cfg), default=str))
    return SimpleNamespace(cfg=cfg, out=out, cache=cache, results=results)


def test_the_withheld_nights_leave_the_owners_splits(other_night_run, tmp_path):
    dm = dm_of(other_night_run.cfg)
    assert dm.withheld_records == ["slp01b", "slp02b"]
    records = np.array([r["record"] for r in dm.cache.meta["records"]])
    window_record = records[np.asarray(dm.cache.record_index)]
    for split in ("train", "val", "test"):
        assert not np.isin(window_record[dm.datasets[split].indices], dm.withheld_records).any()
    attacker = window_record[dm.datasets["attacker"].indices]
    assert sorted(set(attacker)) == ["slp01b", "slp02b"]
    summary = dm.summary()
    assert summary["attacker"]["persons"] == 2
    listed = [r for s in ("train", "val", "test") for r in summary["splits"][s]["records"]]
    assert not set(listed) & {"slp01b", "slp02b"}  # the owner's splits list the owner's nights
    off = compose_config(OTHER[:-1], tmp_path / "o", tmp_path / "c")
    assert "attacker_nights" not in data_identity(off)  # runs without it keep their keys
    assert mechanism_hash(off) != mechanism_hash(other_night_run.cfg)
    assert stage_keys(off)["teacher"] != stage_keys(other_night_run.cfg)["teacher"]
    with_off = dm_of(off)
    assert "attacker" not in with_off.datasets
    n_owner = sum(len(dm.datasets[s]) for s in ("train", "val", "test"))
    assert n_owner + len(dm.datasets["attacker"]) == len(with_off.cache.y)


def test_a_cohort_of_one_night_persons_has_no_other_night(tmp_path):
    cfg = compose_config(
        ["+experiment=apnea_resp", "privacy.attacker_nights=true"], tmp_path / "o", tmp_path / "c"
    )
    with pytest.raises(CohortError, match=r"closed-resp.*attacker_nights=true needs persons"):
        dm_of(cfg)


def test_privacy_stage_runs_criteria_1_and_2_for_the_other_night_attacker(other_night_run):
    privacy = other_night_run.results["privacy"]
    control = privacy["auditor_other_night"]
    assert control["n_persons"] == 2 and control["chance"] == 0.5 and control["n_windows"] > 0
    assert 0 <= control["top1_acc"] <= 1
    details = json.loads((other_night_run.out / "privacy.json").read_text())["details"]
    theirs = details["other_night"]
    assert len(theirs["persons"]) == 2 and set(theirs["persons"]) <= set(details["persons"])
    for name in ("release", "leaky", "leaky_balanced", "placebo"):
        for family in ("attribution_other_night", "in_out_other_night"):
            for score in privacy[name][family].values():
                assert 0 <= score["auc"] <= 1
        scores = theirs["releases"][name]["scores"]
        assert {"auditor_mass", "nn_raw", "dist_features_min", "loss/logreg"} <= set(scores)
        assert all(len(v) == 2 for v in scores.values())
        assert np.isclose(sum(scores["auditor_mass"]), 1.0)  # a posterior over its 2 persons
    card = privacy_summary(other_night_run.results)  # the datacard's one-split block
    assert set(card["attribution_other_night_auc"]) == set(ATTRIBUTION_SCORES)
    assert '"persons"' not in json.dumps(card) and '"is_member"' not in json.dumps(card)


@pytest.mark.parametrize("release_leak", [0.0, 3.0])
def test_the_verdict_pools_the_other_night_criteria(release_leak):
    rng = np.random.default_rng(1)
    leak = {"leaky": 3.0, "leaky_balanced": 3.0, "release": release_leak}
    splits = []
    for _ in range(8):
        split = fake_split(rng, 24, leak)
        split["other_night"] = fake_split(rng, 9, leak, n_members=5)  # 9 multi-night persons
        splits.append(split)
    cfg = {"rules": RULES, "n_bootstrap": 300, "ci": 0.95, "family_level": 0.99}
    auditor = [{"top1_acc": 0.6, "chance": 1 / 24}] * 8
    sharp, blind = (
        [{"top1_acc": 0.5, "chance": 1 / 9}] * 8,
        [{"top1_acc": 0.1, "chance": 1 / 9}] * 8,
    )
    judged, pooled = verdict(splits, auditor, cfg, 0, sharp)
    assert list(judged["criteria"]) == [*CRITERIA, *OTHER_NIGHT]
    assert judged["auditor_other_night"]["powered"]
    assert "roc" in pooled["release"]["in_out_other_night"]["auditor_mass"]
    if release_leak:
        assert set(OTHER_NIGHT) <= set(judged["failing"])
    else:
        assert judged["anonymity"] == "established"
    judged, _ = verdict(splits, auditor, cfg, 0, blind)
    assert not judged["criteria"]["attribution_other_night"]["powered"]
    assert "attribution_other_night" in judged["failing"]
    with pytest.raises(ValueError, match="other-night auditor"):
        verdict(splits, auditor, cfg, 0)
