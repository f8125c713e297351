"""The anonymity criteria (stimuli/privacy/) and their validity: the leaky releases (real training
windows) must fail a criterion and the white-noise placebo must pass it, or the criterion means
nothing. Statistics on small arrays; the criteria themselves on the real tiny closed-resp run.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.data.datasets import RowView, WindowView
from stimuli.data.windows import early_in_night
from stimuli.models import build_network
from stimuli.pipeline import open_job
from stimuli.privacy.auditor import posteriors
from stimuli.privacy.candidates import Candidates
from stimuli.privacy.criteria import ONE_SPLIT, known_truth_releases
from stimuli.privacy.dcr import (
    balanced_windows,
    copy_threshold,
    distance_to_closest_record,
    per_person_nearest,
    per_person_standardized,
)
from stimuli.privacy.neighbours import knn, nearest_other
from stimuli.privacy.roc import clopper_pearson, epsilon_lower_bound, family_roc, tpr_at
from stimuli.privacy.stats import attribution_stats, weighted_aucs
from stimuli.privacy.verdict import CRITERIA, calibrate, judge_roc, verdict
from tests.conftest import REPO, TINY_RUN, compose_config

RULES = {
    "auc_max": 0.6,
    "tpr_at_fpr_0.1_max": 0.2,
    "epsilon_lb_max": 1.0,
    "risk_high_max": 0.09,
    "dcr_share_max": 0.55,
    "near_copies_max": 0,
    "auditor_min_ratio": 2.0,
}


@pytest.fixture(scope="module")
def tiny(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The shared tiny run (closed-resp, 7 one-night persons: 4 train, 3 held out) reopened from
    its cache: its candidates, stimuli and one-split privacy block."""
    job = open_job(compose_config(TINY_RUN, tmp_path_factory.mktemp("run"), tiny_run.cache))
    dm, stim = job.get("dm"), job.get("stimuli")
    cand = Candidates.from_datamodule(dm, 0.3)
    return SimpleNamespace(cfg=job.ctx.cfg, dm=dm, stim=stim, cand=cand, run=tiny_run)


def test_auditor_windows_do_not_depend_on_the_person_split(full_dm, apnea_root, full_cache_dir):
    """The audit's splits share one auditor, trained by whichever job gets there first: its
    windows, labels and their order must be those of every split (in split order they were not,
    and two audits of one mechanism trained different auditors)."""
    seen = []
    for seed in (0, 1):
        dm = ApneaECGDataModule(
            root=apnea_root, cache_dir=full_cache_dir, progress=False, split={"seed": seed}
        )
        cand = Candidates.from_datamodule(dm, 0.3)
        rows = cand.early_rows()
        assert cand.early[rows].all() and len(rows) == cand.early.sum()
        seen.append((cand.x[rows], cand.slot[rows], cand.member))
    (x0, slot0, member0), (x1, slot1, member1) = seen
    assert not np.array_equal(member0, member1)  # the splits differ
    assert np.array_equal(slot0, slot1) and np.array_equal(x0, x1)


# --- statistics ------------------------------------------------------------------------------
def test_attribution_stats_on_known_distributions():
    uniform = attribution_stats(np.repeat(np.arange(4), 5), 4, np.array([1, 1, 1, 2]))
    assert uniform["top1_share"] == 0.25 and uniform["top1_ratio"] == 1.0
    assert uniform["entropy"] == pytest.approx(1.0)
    one = attribution_stats(np.full(10, 2), 4, np.array([1, 1, 1, 1]))
    assert one["top1_ratio"] == 4.0 and one["entropy"] == pytest.approx(0.0)


def test_batched_weighted_auc_is_scikit_learns():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 6, 24).astype(float)  # many ties
    member = rng.random(24) < 0.6
    weights = rng.integers(0, 3, (40, 24)).astype(float)
    for w, auc in zip(weights, weighted_aucs(scores, member, weights)):
        drawn = w > 0
        if member[drawn].all() or not member[drawn].any():
            assert np.isnan(auc)
        else:
            expected = roc_auc_score(member[drawn], scores[drawn], sample_weight=w[drawn])
            assert auc == pytest.approx(expected)


def test_clopper_pearson_and_tpr_at_low_fpr():
    low, high = clopper_pearson(0, 20, 0.95)
    assert low == 0 and 0.1 < high < 0.2  # 0 of 20 still allows ~17 %
    low, high = clopper_pearson(10, 20, 0.95)
    assert low < 0.5 < high
    fpr, tpr = np.array([0, 0.05, 0.1, 0.5, 1]), np.array([0, 0.3, 0.4, 0.9, 1])
    assert tpr_at(fpr, tpr, 0.1) == 0.4 and tpr_at(fpr, tpr, 0.01) == 0


def test_epsilon_bound_is_large_for_a_perfect_attack_and_small_for_noise():
    rng = np.random.default_rng(0)
    member = rng.random(400) < 0.5
    select = np.arange(400) < 200
    assert epsilon_lower_bound(member.astype(float), member, select) > 3
    assert epsilon_lower_bound(rng.standard_normal(400), member, select) < 0.5
    assert epsilon_lower_bound(np.zeros(4), np.array([1, 1, 0, 0], bool), np.ones(4, bool)) == 0


def test_family_intervals_contain_the_raw_ones_and_flag_only_the_leak():
    rng = np.random.default_rng(0)
    person = np.repeat(np.arange(40), 3)
    member = rng.random(120) < 0.5
    scores = {f"noise{i}": rng.standard_normal(120) for i in range(8)}
    scores["leak"] = rng.standard_normal(120) + 2.0 * member
    out = family_roc(person, member, scores, select=person < 20, n_bootstrap=300, ci=0.95, seed=0)
    for block in out.values():
        assert block["family_ci_low"] <= block["ci_low"] <= block["auc"] <= block["ci_high"]
        assert block["ci_high"] <= block["family_ci_high"]
    assert not out["leak"]["covers_chance"] and out["leak"]["auc"] > 0.85
    assert all(out[f"noise{i}"]["covers_chance"] for i in range(8))
    assert out == family_roc(
        person, member, scores, select=person < 20, n_bootstrap=300, ci=0.95, seed=0
    )
    judged = judge_roc(out, RULES)
    assert judged["pass"] is False and judged["worst"]["auc"][0] == "leak"
    assert judge_roc({k: v for k, v in out.items() if k != "leak"}, RULES)["pass"] is True


def test_per_person_calibration_removes_what_is_only_the_persons_geometry():
    """Scores that are mostly who a person is: calibrated against the person's own
    out-of-split scores, a small membership effect shows; the same scores without it stay at
    chance."""
    rng = np.random.default_rng(0)
    n_persons, n_splits = 24, 8
    person = np.tile(np.arange(n_persons), n_splits)
    member = np.concatenate(
        [np.isin(np.arange(n_persons), rng.choice(n_persons, 14, replace=False))] * 1
        + [
            np.isin(np.arange(n_persons), rng.choice(n_persons, 14, replace=False))
            for _ in range(n_splits - 1)
        ]
    )
    geometry = 5 * rng.standard_normal(n_persons)[person]
    leaky = geometry + 1.0 * member + 0.3 * rng.standard_normal(len(person))
    honest = geometry + 0.3 * rng.standard_normal(len(person))
    from sklearn.metrics import roc_auc_score

    def auc(values):
        ok = np.isfinite(values)
        return roc_auc_score(member[ok], values[ok])

    assert auc(calibrate(person, member, leaky)) > 0.9 > auc(leaky)
    assert abs(auc(calibrate(person, member, honest)) - 0.5) < 0.12
    # an out-observation is compared with the person's *other* out-observations only
    one = calibrate(np.zeros(3, int), np.array([False, False, True]), np.array([1.0, 3.0, 5.0]))
    assert one.tolist() == [-2.0, 2.0, 3.0]


def fake_split(rng, n_persons: int, leak: dict[str, float], n_members: int = 14) -> dict:
    """One split's privacy details with made-up scores: `leak[release]` shifts members' scores."""
    member = np.isin(np.arange(n_persons), rng.choice(n_persons, n_members, replace=False))
    releases = {}
    for name in ("release", "leaky", "leaky_balanced", "placebo"):
        shift = leak.get(name, 0.0)
        scores = {
            s: (rng.standard_normal(n_persons) + shift * member).tolist()
            for s in ("auditor_mass", "auditor_top1", "nn_raw", "nn_features", "dist_raw")
        }
        n_success = 200 if shift else 20
        risks = {
            r: {"n_attacks": 500, "n_success": n_success, "n_baseline": 10, "n_control": 20}
            for r in ("singling_out", "linkability", "inference")
        }
        share = 0.5 + 0.1 * shift
        dcr = {"share": share, "ci_low": share - 0.08, "ci_high": share + 0.08}
        dcr |= {"near_copies": 5 if shift else 0, "log_ratio": [0.0]}
        releases[name] = {"scores": scores, "anonymeter": risks, "dcr": dcr}
    return {"persons": list(range(n_persons)), "is_member": member.tolist(), "releases": releases}


@pytest.mark.parametrize("release_leak", [0.0, 3.0])
def test_verdict_needs_powered_valid_criteria_and_names_the_failing_ones(release_leak):
    rng = np.random.default_rng(0)
    leak = {"leaky": 3.0, "leaky_balanced": 3.0, "release": release_leak}
    splits = [fake_split(rng, 24, leak) for _ in range(8)]
    auditor = [{"top1_acc": 0.6, "chance": 1 / 24}] * 8
    cfg = {"rules": RULES, "n_bootstrap": 400, "ci": 0.95, "family_level": 0.99}
    judged, pooled = verdict(splits, auditor, cfg, seed=0)
    assert judged["n_splits"] == 8 and set(judged["criteria"]) == set(CRITERIA)
    for block in judged["criteria"].values():
        assert block["powered"] and block["valid"] and block["counts"]
    for name in ("attribution", "in_out"):  # every score is reported beside the worst
        release = judged["criteria"][name]["release"]
        worst, auc = release["worst"]["auc"]
        assert (
            release["scores"][worst]["auc"]
            == auc
            == max(v["auc"] for v in release["scores"].values())
        )
        assert set(release["scores"]) == set(pooled["release"][name])
        for v in release["scores"].values():
            assert v["family_ci_low"] <= v["ci_low"] <= v["auc"] <= v["ci_high"]
    if release_leak:
        assert judged["anonymity"] == "not established"
        assert judged["failing"] == list(CRITERIA)
    else:
        assert judged["anonymity"] == "established" and judged["failing"] == []
    json.dumps(judged, allow_nan=False)  # plain JSON
    # a blind auditor makes attribution count for nothing, whatever the release scores
    blind = [{"top1_acc": 0.05, "chance": 1 / 24}] * 8
    judged, _ = verdict(splits, blind, cfg, seed=0)
    assert "attribution" in judged["failing"] and not judged["criteria"]["attribution"]["powered"]
    assert pooled["release"]["in_out"]["auditor_mass"]["n_members"] > 0


def test_chunked_nearest_neighbours_are_the_whole_search():
    """`knn` reads both sides a few rows at a time; it must find what one brute-force search over
    everything finds, ties (exact duplicates) going to the first reference row."""
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((53, 2, 6)).astype(np.float32)
    ref[40] = ref[3]  # a duplicate in a later chunk
    query = np.concatenate([rng.standard_normal((20, 2, 6)).astype(np.float32), ref[[3, 17]]])
    whole = NearestNeighbors(n_neighbors=3, algorithm="brute").fit(ref.reshape(53, -1))
    d_want, i_want = whole.kneighbors(query.reshape(len(query), -1))
    d, i = knn(RowView(ref, np.arange(53)), query, k=3, chunk=7)
    assert np.array_equal(i, i_want) and np.allclose(d, d_want, rtol=1e-6)
    assert i[-2, 0] == 3 and i[-2, 1] == 40  # the duplicate: the first row first
    assert np.array_equal(nearest_other(ref, np.array([3, 17])), [0.0, d_want[-1, 1]])


# --- the criteria on real windows -------------------------------------------------------------
def test_candidates_hold_every_person_with_a_time_split_per_night(tiny):
    cand = tiny.cand
    assert cand.n_persons == 7 and cand.is_member.sum() == 4  # 4 training persons
    assert len(cand.x) == sum(len(tiny.dm.datasets[s]) for s in ("train", "val", "test"))
    for p in cand.persons:  # ~70 % of each night is the attacker's, the rest scores its model
        share = cand.early[cand.person == p].mean()
        assert 0.6 < share < 0.8
    assert early_in_night(np.zeros(10, int), np.arange(10), 0.3).sum() == 7
    assert cand.features.shape == (len(cand.x), len(cand.feature_names))
    # read from the cache's memory map on demand, in train, val, test order: never a copy
    assert isinstance(cand.x, WindowView) and cand.x.x is tiny.dm.cache.x
    parts = [tiny.dm.datasets[s].arrays()[0] for s in ("train", "val", "test")]
    assert np.array_equal(cand.x[0 : len(cand.x)], np.concatenate(parts))


def test_known_truth_releases_are_real_member_windows_and_noise(tiny):
    cand, x = tiny.cand, tiny.stim["x"]
    releases = known_truth_releases(cand, x, tiny.stim["labels"], seed=0)
    assert set(releases) == {"release", "leaky", "leaky_balanced", "placebo"}
    members = {w.tobytes() for w in cand.x[cand.member]}
    for name in ("leaky", "leaky_balanced"):
        assert all(w.tobytes() in members for w in releases[name][0])
    noise, labels = releases["placebo"]
    assert noise.shape == x.shape and abs(noise.std() - 1) < 0.1 and set(labels) == {0, 1}
    again = known_truth_releases(cand, x, tiny.stim["labels"], seed=0)
    assert np.array_equal(again["placebo"][0], noise)


def test_dcr_calibrated_per_person_keeps_the_placebo_at_half_and_flags_copies(tiny):
    cand = tiny.cand
    releases = known_truth_releases(cand, tiny.stim["x"], tiny.stim["labels"], seed=0)
    threshold = copy_threshold(cand, {"percentile": 1.0, "max_windows": 500}, 0)
    kw = {"threshold": threshold, "windows_per_person": 50, "n_bootstrap": 200, "ci": 0.95}
    placebo = distance_to_closest_record(cand, releases["placebo"][0], seed=0, **kw)
    leaky = distance_to_closest_record(cand, releases["leaky"][0], seed=0, **kw)
    assert placebo["ci_low"] <= 0.5 <= placebo["ci_high"] and placebo["near_copies"] == 0
    assert leaky["near_copies"] == len(releases["leaky"][0]) and leaky["share"] > placebo["share"]
    take = balanced_windows(cand, 50, 0)  # read 13 at a time, persons cut at chunk edges
    chunked = per_person_nearest(cand, releases["leaky"][0], take, chunk=13)
    whole = per_person_nearest(cand, releases["leaky"][0], take, chunk=len(take))
    assert np.isfinite(whole).all() and np.allclose(chunked, whole, rtol=1e-5, atol=1e-5)
    z = per_person_standardized(np.array([[0.0, 2.0], [1.0, 4.0], [2.0, 8.0]]))
    assert np.allclose(np.median(z, axis=0), 0) and z[0, 0] < -3  # a copy stands out


def test_privacy_stage_is_one_split_json_with_every_criterion(tiny):
    privacy = tiny.run.results["privacy"]
    assert privacy["label"] == ONE_SPLIT
    assert privacy["auditor"]["top1_acc"] > 2 * privacy["auditor"]["chance"]
    details = json.loads((tiny.run.out / "privacy.json").read_text())["details"]
    assert len(details["persons"]) == 7 and sum(details["is_member"]) == 4
    for name in ("release", "leaky", "leaky_balanced", "placebo"):
        block = privacy[name]
        for family in ("attribution", "in_out"):
            for score in block[family].values():
                assert 0 <= score["auc"] <= 1
                assert score["family_ci_low"] <= score["auc"] <= score["family_ci_high"]
        for risk in block["anonymeter"].values():
            assert 0 <= risk["ci_low"] <= risk["risk"] <= risk["ci_high"] <= 1
        assert 0 <= block["dcr"]["share"] <= 1
        scores = details["releases"][name]["scores"]
        assert all(len(v) == 7 for v in scores.values())
        assert {"auditor_mass", "nn_raw", "dist_raw_min", "loss/logreg"} <= set(scores)
    for name in ("leaky", "leaky_balanced"):  # real training windows fail on one split too
        assert privacy[name]["attribution"]["nn_raw"]["auc"] == 1.0
        assert privacy[name]["dcr"]["near_copies"] > 0


@pytest.mark.slow
def test_leaky_releases_fail_and_the_placebo_passes_every_pooled_criterion(tiny):
    """The criteria's validity on real windows: K person splits of the tiny cohort (members
    redrawn, as the audit's splits do), pooled into a verdict. Only the known-truth releases
    are judged, so no mechanism is needed."""
    from omegaconf import OmegaConf

    from stimuli.pipeline.assess_stages import cached_auditor
    from stimuli.privacy.criteria import split_criteria
    from stimuli.privacy.person_scores import attack_student_factories

    pcfg = OmegaConf.to_container(tiny.cfg.privacy, resolve=True)
    job = open_job(tiny.cfg)
    auditor = cached_auditor(job.ctx, tiny.cand, pcfg["auditor"])
    students = attack_student_factories(pcfg["attack_students"])
    rng = np.random.default_rng(0)
    splits, controls = [], []
    for k in range(6):
        members = rng.choice(tiny.cand.persons, 4, replace=False)
        cand = Candidates(**{**vars(tiny.cand), "member": np.isin(tiny.cand.person, members)})
        summary, details = split_criteria(
            cand,
            tiny.stim["x"],
            tiny.stim["labels"],
            lambda x: posteriors(auditor, x),
            students,
            pcfg,
            seed=k,
        )
        splits.append(details)
        controls.append(summary["auditor"])
    judged, _ = verdict(splits, controls, pcfg, seed=0)
    for c in CRITERIA:
        block = judged["criteria"][c]
        assert not block["controls"]["leaky"]["pass"], (c, block["controls"]["leaky"])
        assert block["powered"]
        placebo = block["controls"]["placebo"]
        # 7 persons x 6 splits: a placebo's AUC has sd ~0.09, so the point rule (<= 0.60) is
        # beyond this cohort's size; every interval-based check must still hold (24 persons x 8
        # splits, the open-cohort audit, pass the point rule too: README, privacy section)
        assert block["valid"] == bool(placebo["pass"]) and (
            block["counts"] or c in judged["failing"]
        )
        if c == "anonymeter":  # 4 members vs 3 controls: the placebo's inference success differs
            continue  # between the two groups of people (0.16 here); 24 persons pass (0.008)
        assert all(v for k, v in placebo.get("checks", {}).items() if k != "auc"), (c, placebo)


def test_auditor_is_not_the_identity_models_architecture_or_seed(tiny):
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "conf" / "privacy" / "default.yaml")
    auditor = build_network(cfg.auditor.model, 1, 3, 1200)
    identity = build_network(tiny.cfg.identity.model, 1, 3, 1200)
    assert type(auditor) is not type(identity)
    assert int(cfg.auditor.seed_offset) != 1  # the identity model is trained with seed + 1
