"""The privacy audit (stimuli/privacy/) on a tiny real closed-resp run and real Apnea-ECG nights.

Each attack must work on real data (its control) before its failure on stimuli means anything, so
the tests check the controls' power on a deliberately leaky release (real training windows
released as if they were stimuli) and cross-night re-identification on people with two nights.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.models import build_network
from stimuli.pipeline import open_job
from stimuli.privacy import (
    RealWindows,
    attribution_by_classifier,
    attribution_by_neighbour,
    audit_privacy,
    copy_distance,
    cross_night_linkage,
    membership_inference,
)
from stimuli.privacy.linkage import nights_by_person
from stimuli.privacy.membership import placebo_release
from stimuli.privacy.stats import attribution_stats, bootstrap_auc, pooled_auc
from stimuli.students import ClassicalStudent
from tests.conftest import REPO, TINY_RUN, compose_config

FAST = {  # the default config, scaled down for seconds-long tests
    "auditor": {"steps": 60, "batch_size": 64},
    "max_queries": 300,
    "membership": {"n_bootstrap": 200},
    "copy": {"max_windows": 500},
    "linkage": {"auditor": {"steps": 60}},
}
# Apnea-ECG nights of three people with several nights (a01/a14, a04/a12, a05/a10/a20).
MULTI_NIGHT = ["a01", "a14", "a04", "a12", "a05", "a10", "a20"]


def privacy_cfg(**overrides) -> DictConfig:
    cfg = OmegaConf.load(REPO / "conf" / "privacy" / "default.yaml")
    return OmegaConf.merge(cfg, FAST, overrides)


@pytest.fixture(scope="module")
def tiny(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The shared tiny run (closed-resp, 7 one-night persons: 4 train, 3 held out) reopened from
    its cache, and its stimuli."""
    job = open_job(compose_config(TINY_RUN, tmp_path_factory.mktemp("run"), tiny_run.cache))
    dm, teacher, stim = job.get("dm"), job.get("teacher"), job.get("stimuli")
    real = RealWindows.from_datamodule(dm, 0.3)
    student = ClassicalStudent("logreg", fs=dm.fs, C=1.0, class_weight="balanced")
    leaky = real.leaky_release(len(stim["x"]), seed=0)
    leaky_balanced = real.balanced_leaky_release(len(stim["x"]), seed=0)
    return SimpleNamespace(
        cfg=job.ctx.cfg,
        dm=dm,
        teacher=teacher,
        x=stim["x"],
        real=real,
        leaky=leaky,
        leaky_balanced=leaky_balanced,
        controls={"leaky_x": leaky, "leaky_balanced_x": leaky_balanced},
        students={"logreg/stimuli": student.fit(stim["x"], stim["labels"])},
    )


def assert_block_in_range(block: dict, n_persons: int) -> None:
    assert 1 / n_persons - 1e-9 <= block["top1_share"] <= 1
    assert block["top1_ratio"] == pytest.approx(block["top1_share"] * n_persons, abs=1e-3)
    assert 0 <= block["entropy"] <= 1
    assert block["kl_to_training"] >= 0


def assert_auc_block(block: dict) -> None:
    assert 0 <= block["auc"] <= 1
    assert block["ci_low"] <= block["auc"] <= block["ci_high"]
    assert block["covers_chance"] == (block["ci_low"] <= 0.5 <= block["ci_high"])


def assert_plain_json(obj) -> None:
    """Only dict/list/str/int/float/bool/None, and finite floats (json without NaN)."""
    json.dumps(obj, allow_nan=False)
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str
            assert_plain_json(v)
    elif isinstance(obj, list):
        for v in obj:
            assert_plain_json(v)
    else:
        assert obj is None or type(obj) in (str, int, float, bool), type(obj)


def assert_non_member_reference(block: dict, real) -> None:
    """Pooled statistics of real non-member windows, and a (min, median, max) per person."""
    n_p = real.n_persons
    assert_block_in_range(block, n_p)
    assert block["n_persons"] == len(np.unique(real.person_out))
    for key in ("single_non_member_top1_ratio", "single_non_member_entropy"):
        low, mid, high = block[key]
        assert low <= mid <= high
    # one person's windows are never spread more evenly than everyone's together
    assert block["single_non_member_entropy"][0] <= block["entropy"] + 1e-9


# --- shared statistics ---------------------------------------------------------------------------
def test_attribution_stats_on_known_distributions():
    uniform = attribution_stats(np.repeat(np.arange(4), 5), 4, np.array([1, 1, 1, 2]))
    assert uniform["top1_share"] == 0.25 and uniform["top1_ratio"] == 1.0
    assert uniform["entropy"] == pytest.approx(1.0)
    assert uniform["kl_to_training"] > 0  # the training shares are not uniform
    assert uniform["counts"] == [5, 5, 5, 5]
    one = attribution_stats(np.full(10, 2), 4, np.array([1, 1, 1, 1]))
    assert one["top1_share"] == 1.0 and one["top1_ratio"] == 4.0
    assert one["entropy"] == pytest.approx(0.0)
    assert one["kl_to_training"] == pytest.approx(np.log(4))


def test_bootstrap_auc_separates_and_is_seeded():
    member = np.array([True] * 6 + [False] * 5)
    perfect = bootstrap_auc(member.astype(float), member, 200, 0.95, seed=0)
    assert perfect["auc"] == 1.0 and perfect["ci_low"] == 1.0 and not perfect["covers_chance"]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(member))
    first = bootstrap_auc(noise, member, 200, 0.95, seed=3)
    assert first == bootstrap_auc(noise, member, 200, 0.95, seed=3)
    assert first["ci_low"] < first["auc"] < first["ci_high"]
    assert bootstrap_auc(noise, np.ones(11, bool), 10, 0.95, seed=0)["auc"] is None


def test_pooled_auc_averages_splits_and_bootstraps_persons_jointly():
    rng = np.random.default_rng(0)
    persons = np.arange(24)
    splits = []
    for seed in range(3):  # each split makes other persons members, as person splits do
        member = np.isin(persons, np.random.default_rng(seed).choice(24, 14, replace=False))
        splits.append((persons, member, rng.standard_normal(24) + 0.8 * member))
    pooled = pooled_auc(splits, 300, 0.95, seed=0)
    singles = [bootstrap_auc(s, m, 10, 0.95, 0)["auc"] for _, m, s in splits]
    assert pooled["split_aucs"] == pytest.approx(singles)
    assert pooled["auc"] == pytest.approx(np.mean(singles))
    assert pooled["n_splits"] == 3 and pooled["n_persons"] == 24
    assert pooled["ci_low"] < pooled["auc"] < pooled["ci_high"]
    assert pooled == pooled_auc(splits, 300, 0.95, seed=0)
    # three splits narrow the interval of one
    one = pooled_auc(splits[:1], 300, 0.95, seed=0)
    assert pooled["ci_high"] - pooled["ci_low"] < one["ci_high"] - one["ci_low"]
    separated = [(p, m, m.astype(float)) for p, m, _ in splits]
    perfect = pooled_auc(separated, 100, 0.95, seed=0)
    assert perfect["auc"] == 1.0 and not perfect["covers_chance"]
    # a person without a score (NaN) is left out, not counted as a loss
    with_gap = [(p, m, np.where(p == 0, np.nan, m.astype(float))) for p, m, _ in splits]
    assert pooled_auc(with_gap, 50, 0.95, seed=0)["auc"] == 1.0
    with pytest.raises(ValueError, match="at least one split"):
        pooled_auc([], 10, 0.95, seed=0)


def test_batched_weighted_auc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from stimuli.privacy.stats import _weighted_aucs

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, 24).astype(float)  # many ties
    member = rng.random(24) < 0.6
    weights = rng.integers(0, 3, (40, 24)).astype(float)
    batched = _weighted_aucs(scores, member, weights)
    for w, auc in zip(weights, batched):
        drawn = w > 0
        if member[drawn].all() or not member[drawn].any():
            assert np.isnan(auc)
        else:
            expected = roc_auc_score(member[drawn], scores[drawn], sample_weight=w[drawn])
            assert auc == pytest.approx(expected)


def test_auditor_is_not_the_identity_models_architecture_or_seed(tiny):
    cfg = privacy_cfg()
    auditor = build_network(cfg.auditor.model, 1, 3, 1200)
    identity = build_network(tiny.cfg.identity.model, 1, 3, 1200)
    assert type(auditor) is not type(identity)
    assert int(cfg.auditor.seed_offset) != 1  # the identity model is trained with seed + 1


# --- the attacks on a tiny real run --------------------------------------------------------------
def test_attribution_by_classifier(tiny):
    summary, details = attribution_by_classifier(
        tiny.dm, tiny.x, privacy_cfg(), seed=0, real=tiny.real, **tiny.controls
    )
    control, n_p = summary["control"], tiny.real.n_persons
    assert control["chance"] == pytest.approx(1 / n_p, abs=1e-4)
    assert control["top1_acc"] >= 2 * control["chance"]  # the auditor works on real windows
    for name, x in (
        ("release", tiny.x),
        ("leaky", tiny.leaky),
        ("leaky_balanced", tiny.leaky_balanced),
    ):
        assert_block_in_range(summary[name], n_p)
        assert 1 / n_p - 1e-9 <= summary[name]["confidence"] <= 1
        assert sum(details[f"{name}_counts"]) == len(x)
    assert_non_member_reference(summary["non_members"], tiny.real)
    # the release of real windows is told apart by the auditor's confidence, not its entropy
    assert summary["leaky"]["confidence"] > control["confidence_non_members"]
    assert summary["leaky"]["kl_to_training"] < summary["release"]["kl_to_training"]


def test_attribution_by_neighbour(tiny):
    summary, details = attribution_by_neighbour(
        tiny.dm, tiny.teacher, tiny.x, privacy_cfg(), seed=0, real=tiny.real, **tiny.controls
    )
    assert set(summary) == {"raw", "embedding"}
    for view, block in summary.items():
        assert block["control"]["top1_acc"] > block["control"]["chance"]
        for name, x in (("release", tiny.x), ("leaky", tiny.leaky)):
            assert_block_in_range(block[name], tiny.real.n_persons)
            assert 0 < block[name]["agreement"] <= 1
            assert sum(details[f"{view}_{name}_counts"]) == len(x)
        assert_non_member_reference(block["non_members"], tiny.real)
        # copies sit on a training window; real held-out windows do not
        assert block["leaky"]["distance"] < 1e-3 * block["control"]["distance_held_out"]
        assert block["release"]["distance"] > 1e-3 * block["control"]["distance_held_out"]
        # each balanced copy is its own nearest neighbour: a perfectly flat attribution from
        # the leakiest release, which the spread targets cannot tell from anonymity
        flat = block["leaky_balanced"]
        assert flat["top1_ratio"] == pytest.approx(1.0) and flat["entropy"] == pytest.approx(1.0)
        assert flat["distance"] < 1e-3 * block["control"]["distance_held_out"]


def test_balanced_leaky_release_is_real_even_and_seeded(tiny):
    real = tiny.real
    x = real.balanced_leaky_release(len(tiny.x), seed=0)
    per_person = min(len(tiny.x) // real.n_persons, int(real.train_counts.min()))
    assert len(x) == per_person * real.n_persons
    rows = {row.tobytes(): i for i, row in enumerate(real.x_train)}
    persons = real.label[[rows[row.tobytes()] for row in x]]  # every window is a training window
    assert np.bincount(persons, minlength=real.n_persons).tolist() == [per_person] * real.n_persons
    np.testing.assert_array_equal(x, real.balanced_leaky_release(len(tiny.x), seed=0))
    assert not np.array_equal(x, real.balanced_leaky_release(len(tiny.x), seed=1))


def test_membership_inference_and_its_leaky_control(tiny):
    summary, details = membership_inference(
        tiny.dm, tiny.teacher, tiny.x, tiny.students, privacy_cfg(), 0, real=tiny.real,
        leaky_x=tiny.leaky,
    )  # fmt: skip
    assert (summary["n_members"], summary["n_non_members"]) == (4, 3)
    assert set(summary["release"]) == {
        "knn_raw",
        "knn_raw_min",
        "knn_embedding",
        "knn_embedding_min",
        "student_loss/logreg/stimuli",
    }
    assert set(summary["baselines"]) == {f"placebo_{n}" for n in summary["release"] if "knn" in n}
    for block in [*summary["release"].values(), *summary["controls"].values()]:
        assert_auc_block(block)
    for block in summary["baselines"].values():
        assert_auc_block(block)
    # a handful of copied windows per member is found by the closest-approach scores
    assert summary["controls"]["leaky_knn_raw_min"]["auc"] >= 0.8
    assert summary["controls"]["leaky_knn_embedding_min"]["auc"] >= 0.8
    persons = details["persons"]
    assert len(persons) == 7 and sum(p["member"] for p in persons) == 4
    assert all(np.isfinite(p["teacher_loss"]) and p["teacher_loss"] <= 0 for p in persons)


def test_the_placebo_release_is_noise_of_the_release_shape_drawn_from_the_seed():
    a, b = placebo_release(64, (2, 300), 0), placebo_release(64, (2, 300), 1)
    assert a.shape == (64, 2, 300) and a.dtype == np.float32
    assert np.array_equal(a, placebo_release(64, (2, 300), 0)) and not np.array_equal(a, b)
    assert abs(a.mean()) < 0.02 and abs(a.std() - 1) < 0.02


def test_membership_mean_scores_catch_a_tenth_of_the_training_windows(tiny):
    """As on the full cohort (1024 stimuli, ~10k training windows): the per-person mean scores
    need no single copy to stand out."""
    leaky = tiny.real.leaky_release(len(tiny.real.x_train) // 10, seed=1)
    summary, _ = membership_inference(
        tiny.dm, tiny.teacher, tiny.x, {}, privacy_cfg(), 0, real=tiny.real, leaky_x=leaky
    )
    assert summary["controls"]["leaky_knn_raw"]["auc"] >= 0.8
    assert summary["controls"]["leaky_knn_embedding"]["auc"] >= 0.8


def test_copy_distance_flags_the_leaky_release(tiny):
    summary, details = copy_distance(
        tiny.dm, tiny.x, privacy_cfg(), seed=0, real=tiny.real, leaky_x=tiny.leaky
    )
    assert 0 < summary["threshold"] <= summary["real_to_real_median"]
    for name in ("release", "leaky"):
        block = summary[name]
        assert 0 <= block["share_closer_to_training"] <= 1
        assert 0 <= block["flagged"] <= len(tiny.x)
        assert block["flagged_share"] == pytest.approx(block["flagged"] / len(tiny.x), abs=1e-4)
        assert len(details[name]["flagged_indices"]) == block["flagged"]
    assert summary["leaky"]["share_closer_to_training"] >= 0.9
    assert summary["leaky"]["flagged"] == len(tiny.leaky)
    assert summary["leaky"]["nearest_median"] == 0.0


# --- cross-night linkage -------------------------------------------------------------------------
def test_linkage_not_applicable_without_several_nights(tiny):
    assert all(len(n) == 1 for n in nights_by_person(tiny.dm).values())
    summary, details = cross_night_linkage(tiny.dm, privacy_cfg(), seed=0)
    assert summary["applicable"] is False and "several nights" in summary["reason"]
    assert details == {}


@pytest.fixture(scope="module")
def multi_night_dm(apnea_root: Path, tmp_path_factory) -> ApneaECGDataModule:
    dm = ApneaECGDataModule(
        root=apnea_root,
        records=MULTI_NIGHT,
        cache_dir=tmp_path_factory.mktemp("windows"),
        progress=False,
    )
    dm.prepare_data()
    dm.setup()
    return dm


def test_linkage_reidentifies_people_across_nights(multi_night_dm):
    nights = nights_by_person(multi_night_dm)
    assert sorted(len(n) for n in nights.values()) == [2, 2, 3]
    summary, details = cross_night_linkage(multi_night_dm, privacy_cfg(), seed=0)
    assert summary["applicable"] and summary["n_persons"] == 3
    assert summary["n_test_nights"] == 4 and len(details["train_nights"]) == 3
    assert summary["chance"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["window_top1_acc"] >= 2 * summary["chance"]


# --- the whole audit -----------------------------------------------------------------------------
def test_audit_privacy_is_plain_json_consistent_and_seeded(tiny):
    cfg = privacy_cfg()
    summary, details = audit_privacy(tiny.dm, tiny.teacher, tiny.x, tiny.students, cfg, seed=0)
    assert_plain_json(summary)
    assert_plain_json(details)
    assert summary["n_stimuli"] == len(tiny.x) and summary["n_persons"] == 4
    assert summary["linkage"]["applicable"] is False
    targets = summary["meets_targets"]
    assert targets["controls"]["linkage"] is None
    assert targets["release"]["copy_distance"] == (
        summary["copy_distance"]["release"]["flagged"] == 0
    )
    ac = summary["attribution_classifier"]["release"]
    assert targets["release"]["attribution_classifier"] == (
        ac["top1_ratio"] <= 1.5 and ac["entropy"] >= 0.9
    )
    membership = summary["membership"]["release"].values()
    assert targets["release"]["membership"] == all(
        b["auc"] <= 0.55 and b["covers_chance"] for b in membership
    )
    assert targets["controls"]["copy_leaky"] is True
    # the balanced leaky release meets the nearest-neighbour spread targets: they have no power
    flat = targets["leaky_balanced_meets_attribution"]
    assert set(flat) == set(targets["release"]) - {"membership", "copy_distance"}
    assert flat["attribution_neighbour_raw"] is True
    assert targets["all"] == (targets["controls_have_power"] and all(targets["release"].values()))
    assert set(summary["seconds"]) >= {"attribution_classifier", "membership", "total"}
    again, again_details = audit_privacy(tiny.dm, tiny.teacher, tiny.x, tiny.students, cfg, 0)
    summary.pop("seconds"), again.pop("seconds")
    assert again == summary and again_details == details
