"""The release bundle, its leak check and the third party's side, on a tiny real closed-resp run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import mne
import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

import stimuli.teacher
from stimuli import release
from stimuli.classifier import predict_proba
from stimuli.data.datasets import WindowView
from stimuli.pipeline import Runner, assess_stages, open_job, run_pipeline
from stimuli.pipeline.assess_stages import release_forbidden
from stimuli.release import DATE_RE, BundleError, LeakError
from stimuli.release.datamodule import StimuliDataModule
from stimuli.teacher import person_groups, restrict_training_persons
from tests.conftest import TINY, TINY_RUN, compose_config
from tests.test_pipeline import METRICS

OWNER = [*TINY, "student=logreg", "threads=1"]


@pytest.fixture
def owner(tiny_run) -> SimpleNamespace:
    """The shared finished tiny run (all default stages, release included)."""
    return SimpleNamespace(
        out=tiny_run.out, cache=tiny_run.cache, results=tiny_run.live, bundle=tiny_run.bundle
    )


@pytest.fixture(scope="module")
def owner_run(tiny_run, tmp_path_factory) -> tuple[Runner, release.ForbiddenInfo]:
    """The same run reopened from the cache (nothing retrained), and what it must not release."""
    run = open_job(compose_config(TINY_RUN, tmp_path_factory.mktemp("reopened"), tiny_run.cache))
    dm, teacher, identity = run.get("dm"), run.get("teacher"), run.get("identity")
    forbidden = release_forbidden(run.ctx, dm, teacher, identity, run.get("label_teachers"))
    return run, forbidden


def record_names(run: Runner) -> list[str]:
    return [r["record"] for r in run.get("dm").cache.meta["records"]]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".release"))


# --- the bundle -----------------------------------------------------------------------------------
def test_release_is_complete_and_checksummed(owner):
    assert sorted(p.name for p in owner.bundle.iterdir()) == [
        "SHA256SUMS",
        "datacard.json",
        "stimuli.npz",
    ]
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=owner.bundle, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert leftovers(owner.out) == []
    summary = owner.results["release"]
    assert summary["n"] == 32 and summary["soft_labels"]
    assert summary["copy_check"]["flagged"] == 0
    with zipfile.ZipFile(owner.bundle / "stimuli.npz") as zf:  # no date in the zip entries
        assert {i.date_time for i in zf.infolist()} == {release.ZIP_DATE}
        assert sorted(zf.namelist()) == ["labels.npy", "soft.npy", "x.npy"]


def test_a_release_without_soft_labels_carries_no_distilled_numbers(owner, tmp_path):
    stages = "stages=[data,teacher,synthesize,students,evaluate,release]"
    cfg = compose_config([*OWNER, stages, "release.soft_labels=false"], tmp_path, owner.cache)
    results = run_pipeline(cfg)
    assert "stimuli_kd" in results["students"]["logreg"]  # still measured for the owner
    card = json.loads((tmp_path / "release" / "datacard.json").read_text())
    assert not card["soft_labels"]
    assert set(card["utility"]["students"]["logreg"]) == {"real", "stimuli", "gap"}
    with zipfile.ZipFile(tmp_path / "release" / "stimuli.npz") as zf:
        assert sorted(zf.namelist()) == ["labels.npy", "x.npy"]
    # the default bundle carries both
    default_card = json.loads((owner.bundle / "datacard.json").read_text())
    assert "stimuli_kd" in default_card["utility"]["students"]["logreg"]


def test_soft_labels_from_teachers_on_disjoint_persons(owner, tmp_path, monkeypatch):
    overrides = [
        *OWNER,
        "soft_labels.teachers=3",
        "stages=[data,teacher,synthesize,students,evaluate,release]",
        "hard_labels=false",  # as the audit runs: no students on the stimuli's hard labels
    ]
    radii = []  # each label teacher's adversarial radius
    fit_teacher = stimuli.teacher.train_teacher

    def recording_radius(*args, **kwargs):
        radii.append(float(kwargs["cfg"].adv_eps))
        return fit_teacher(*args, **kwargs)

    monkeypatch.setattr("stimuli.teacher.train_teacher", recording_radius)
    cfg = compose_config(overrides, tmp_path / "run", owner.cache)
    results = run_pipeline(cfg)
    assert cfg.teacher.adv_eps > 0 and radii == [cfg.teacher.adv_eps] * 3  # the teacher's
    assert list(results["students"]["logreg"]) == ["real", "stimuli_kd", "gap_kd"]
    assert results["cache"]["label_teachers"] == "trained"
    assert results["cache"]["stimuli"] == "cached"  # the stimuli do not depend on the labels
    block = results["soft_labels"]
    assert block["teachers"] == 3 and block["persons_per_teacher"] == [2, 1, 1]
    assert 0 <= block["agreement_with_teacher"] <= 1 and set(block["test"]) == METRICS
    assert set(results["students"]["logreg"]["stimuli_kd"]) == METRICS
    card = json.loads((tmp_path / "run" / "release" / "datacard.json").read_text())
    assert card["soft_label_teachers"] == 3
    with np.load(tmp_path / "run" / "release" / "stimuli.npz") as f:
        x, soft = f["x"], f["soft"]

    def no_training(*args, **kwargs):
        raise AssertionError("the label teachers were trained again although they are cached")

    monkeypatch.setattr("stimuli.teacher.train_teacher", no_training)
    run = open_job(compose_config(overrides, tmp_path / "again", owner.cache))
    label_teachers = run.get("label_teachers")
    assert run.results["cache"]["label_teachers"] == "cached"
    # the bundle's soft labels are the label teachers' mean probabilities, not the teacher's
    expected = predict_proba(label_teachers, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(soft, expected, atol=1e-6)
    np.testing.assert_allclose(run.get("soft_labels"), soft, atol=1e-6)
    with np.load(owner.out / "stimuli.npz") as f:
        assert not np.allclose(soft, f["teacher_probs"], atol=1e-3)
    # each label teacher saw only its own group of training persons
    train = run.get("dm").datasets["train"]
    groups = person_groups(train.person[train.indices], 3, 0 + 100)  # seed + seed_offset
    assert sum(len(g) for g in groups) == len(set(np.concatenate(groups))) == 4  # disjoint
    for group in groups:
        sub = restrict_training_persons(run.get("dm"), group).datasets["train"]
        assert set(np.unique(sub.person[sub.indices])) == set(group)
    assert len(run.get("dm").datasets["train"]) == len(train)  # the run's own split is untouched


def test_person_groups_are_disjoint_balanced_and_seeded():
    persons = np.repeat([3, 5, 8, 13, 21, 34, 55], 4)  # one entry per window
    groups = person_groups(persons, 3, seed=0)
    assert sorted(len(g) for g in groups) == [2, 2, 3]
    assert sorted(np.concatenate(groups).tolist()) == [3, 5, 8, 13, 21, 34, 55]
    again = person_groups(persons, 3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(groups, again, strict=True))
    other = person_groups(persons, 3, seed=1)
    assert any(not np.array_equal(a, b) for a, b in zip(groups, other, strict=True))
    with pytest.raises(ValueError, match="7 training persons into 8 groups"):
        person_groups(persons, 8, seed=0)


def test_bundle_round_trips_through_the_datamodule(owner, owner_run):
    with np.load(owner.out / "stimuli.npz") as f:  # the owner's copy (synthesize stage)
        x, labels = f["x"], f["labels"]
    dm = StimuliDataModule(owner.bundle, batch_size=8, val_fraction=0.25, seed=1)
    bx, by, bsoft = dm.arrays()
    assert bx.dtype == np.float32 and by.dtype == np.int64 and bsoft.dtype == np.float32
    np.testing.assert_array_equal(bx, x)
    np.testing.assert_array_equal(by, labels)
    np.testing.assert_array_equal(bsoft, owner_run[0].get("soft_labels"))
    card = json.loads((owner.bundle / "datacard.json").read_text())
    assert card["soft_label_teachers"] == owner_run[0].ctx.cfg.soft_labels.teachers
    assert (dm.n_chans, dm.n_times, dm.n_classes, dm.fs) == (4, 60, 2, 1.0)
    assert dm.channels == ["airflow", "thorax", "abdomen", "spo2"]
    assert set(dm.checksums) == {"stimuli.npz", "datacard.json"}
    train = torch.cat([b[1] for b in dm.train_dataloader()])
    val_x, val_y = next(iter(dm.val_dataloader()))
    assert len(train) + len(val_y) == 32 and len(val_y) == 8
    assert val_x.shape[1:] == (4, 60) and set(val_y.tolist()) == {0, 1}
    soft_dm = StimuliDataModule(owner.bundle, batch_size=8, use_soft=True)
    xb, soft = next(iter(soft_dm.train_dataloader()))
    assert xb.shape == (8, 4, 60) and soft.shape == (8, 2) and soft.dtype == torch.float32


def test_a_bundle_whose_arrays_need_pickle_is_refused(owner, tmp_path):
    import hashlib

    bundle = Path(shutil.copytree(owner.bundle, tmp_path / "bundle"))
    with np.load(bundle / "stimuli.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["labels"] = np.array([{"run": "code"}] * len(arrays["labels"]), dtype=object)
    np.savez(bundle / "stimuli.npz", **arrays)  # pickles the object array
    sums = "".join(
        f"{hashlib.sha256((bundle / n).read_bytes()).hexdigest()}  {n}\n"
        for n in ("datacard.json", "stimuli.npz")
    )
    (bundle / "SHA256SUMS").write_text(sums)  # checksums that match: only pickle is wrong
    with pytest.raises(BundleError, match=r"stimuli\.npz: cannot be read without pickle"):
        StimuliDataModule(bundle)


@pytest.mark.parametrize("target", ["stimuli.npz", "datacard.json"])
def test_tampered_or_missing_file_is_named(owner, tmp_path, target):
    bundle = Path(shutil.copytree(owner.bundle, tmp_path / "bundle"))
    data = bytearray((bundle / target).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / target).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=re.escape(target) + ".*checksum mismatch"):
        StimuliDataModule(bundle)
    (bundle / target).unlink()
    with pytest.raises(BundleError, match=re.escape(target) + ".*missing"):
        StimuliDataModule(bundle)
    (bundle / "SHA256SUMS").unlink()
    with pytest.raises(BundleError, match=r"SHA256SUMS.*missing"):
        StimuliDataModule(bundle)


def test_datacard_names_nothing_of_the_cohort(owner, owner_run):
    run, forbidden = owner_run
    text = (owner.bundle / "datacard.json").read_text()
    card = json.loads(text)
    for name in {*record_names(run), *(r["person"] for r in run.get("dm").cache.meta["records"])}:
        assert not re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text, re.I), name
    assert "/" not in text and "\\" not in text  # no path
    assert not DATE_RE.search(text)
    keys = re.findall(r'"([^"]+)":', text)
    assert keys and not [k for k in keys if re.search(r"person|patient|subject|record", k, re.I)]
    # what it does say
    assert card["channels"] == ["airflow", "thorax", "abdomen", "spo2"]
    assert card["window"] == {"seconds": 60.0, "samples": 60} and card["fs"] == 1.0
    assert card["labels"]["names"] == ["normal", "apnea"]
    assert sum(card["labels"]["counts"].values()) == 32
    assert card["synthesis"]["steps"] == 8 and card["synthesis"]["weights"]["bn"] == 3.0
    assert card["teacher"]["architecture"]["_target_"] == "stimuli.models.cnn.CNN"
    assert set(card["utility"]["teacher"]) == METRICS
    assert set(card["utility"]["students"]["logreg"]["stimuli"]) == METRICS
    # the privacy audit's headline numbers on the release, without per-person values
    audit = owner.results["privacy"]["release"]
    privacy = card["privacy"]
    assert privacy["label"] == "one split, not a verdict"
    assert privacy["attribution_auc"]["nn_raw"]["auc"] == audit["attribution"]["nn_raw"]["auc"]
    assert privacy["in_out_auc"]["loss.logreg"]["auc"] == audit["in_out"]["loss/logreg"]["auc"]
    assert (
        privacy["anonymeter"]["inference"]["ci_high"] == audit["anonymeter"]["inference"]["ci_high"]
    )
    assert privacy["dcr"]["share"] == audit["dcr"]["share"]
    # no audit of this mechanism yet: the card says so and names the command
    assert card["verdict"]["anonymity"] == "not audited"
    assert "python -m stimuli.audit" in card["verdict"]["how"]
    assert not [k for k in re.findall(r'"([^"]+)":', json.dumps(privacy)) if "person" in k]
    files = {p.name: p.read_bytes() for p in owner.bundle.iterdir()}
    assert release.check_leaks(files, forbidden) == []


# --- the leak check -------------------------------------------------------------------------------
def edf_patient_name(data_root: Path) -> str:
    info = mne.io.read_raw_edf(data_root / "closed-resp" / "a01.edf", verbose="error").info
    return info["subject_info"]["first_name"]  # "Apnea-ECG": the name part of the patient field


def bn_running_mean(model: torch.nn.Module) -> tuple[str, np.ndarray]:
    state = model.state_dict()
    key = next(k for k in state if k.endswith("running_mean"))
    return key, state[key].numpy().copy()


PLANTS = ["record", "edf_patient", "date", "bn_stats", "label_teacher_bn", "bn_key", "copy"]


@pytest.mark.parametrize("plant", PLANTS)
def test_leak_check_refuses_and_writes_nothing(owner, owner_run, tmp_path, data_root, plant):
    run, forbidden = owner_run
    with np.load(owner.bundle / "stimuli.npz") as f:
        arrays = {k: f[k] for k in f.files}
    card = json.loads((owner.bundle / "datacard.json").read_text())
    arrays = dict(arrays)
    if plant == "record":
        card["synthesis"]["note"] = "teacher trained on A01 and others"
        expect = ["record/file name 'A01'"]
    elif plant == "edf_patient":
        name = edf_patient_name(data_root)
        card["description"] = f"stimuli from the {name} study"
        expect = [f"header field {name!r}", "EDF"]
    elif plant == "date":
        card["made"] = "2000-01-01"
        expect = ["date", "2000-01-01"]
    elif plant == "bn_stats":
        key, mean = bn_running_mean(run.get("teacher"))
        arrays["aux"] = mean
        expect = ["stimuli.npz:aux", f"teacher.{key}"]
    elif plant == "label_teacher_bn":  # a label teacher's statistics, which the default trains
        key, mean = bn_running_mean(run.get("label_teachers"))
        arrays["aux"] = mean
        expect = ["stimuli.npz:aux", f"label_teachers.{key}"]
    elif plant == "bn_key":
        arrays["running_mean"] = np.zeros(3, np.float32)
        expect = ["running_mean", "state-dict"]
    else:
        x_train = run.get("dm").datasets["train"].arrays()[0]
        arrays["x"] = arrays["x"].copy()
        arrays["x"][5] = x_train[100]
        expect = ["stimuli.npz:x", "near copies", "indices 5"]
    dest = tmp_path / "run" / "release"
    with pytest.raises(LeakError) as err:
        release.write_release(dest, release.bundle_files(arrays, card), forbidden)
    for part in expect:
        assert part in str(err.value), (part, str(err.value))
    assert not dest.exists()
    assert not (tmp_path / "run").exists() or leftovers(tmp_path / "run") == []


def test_the_copy_check_reads_the_cohort_split_by_split_and_finds_the_nearest_real_window(
    owner, owner_run
):
    run, forbidden = owner_run
    assert [type(w) for w in forbidden.windows] == [WindowView] * 3  # the cache's memory map
    whole = np.concatenate([ds.arrays()[0] for ds in run.get("dm").datasets.values()])
    assert forbidden.reference_windows() == len(whole)
    with np.load(owner.bundle / "stimuli.npz") as f:
        x = f["x"]
    x = np.concatenate([x, whole[[7, len(whole) - 1]]])  # and two real windows of the cohort
    index = NearestNeighbors(n_neighbors=1).fit(whole.reshape(len(whole), -1))
    expected = index.kneighbors(x.reshape(len(x), -1))[0][:, 0]
    np.testing.assert_allclose(forbidden.nearest_real(x), expected, rtol=1e-4, atol=1e-4)
    assert np.all(forbidden.nearest_real(x)[-2:] <= forbidden.copy_threshold()[1])


def test_record_name_is_not_matched_inside_numbers(owner_run):
    _, forbidden = owner_run
    card = {"lr": 0.01, "values": [1.01, 2.0], "text": "window_a01x is fine", "id": "xa01"}
    assert release.check_leaks({"datacard.json": card}, forbidden) == []
    assert release.check_leaks({"datacard.json": {"t": "a01-nsrr.xml"}}, forbidden)
    assert release.check_leaks({"datacard.json": {"t": "(a01)"}}, forbidden)


def test_stage_fails_with_leak_error_and_writes_no_release(owner, tmp_path, monkeypatch):
    real = assess_stages.make_datacard

    def leaky(*args, **kwargs):
        card = real(*args, **kwargs)
        card["channels"][0] = "airflow of c02"
        return card

    monkeypatch.setattr(assess_stages, "make_datacard", leaky)
    out = tmp_path / "out"
    cfg = compose_config([*OWNER, "stages=[release]"], out, owner.cache)
    with pytest.raises(LeakError, match="c02"):
        run_pipeline(cfg)
    assert not (out / "release").exists() and leftovers(out) == []


def test_existing_release_is_kept_on_failure_and_replaced_on_success(owner, owner_run, tmp_path):
    _, forbidden = owner_run
    dest = Path(shutil.copytree(owner.bundle, tmp_path / "run" / "release"))
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    with np.load(owner.bundle / "stimuli.npz") as f:
        arrays = {k: f[k] for k in f.files}
    card = json.loads((owner.bundle / "datacard.json").read_text())
    leaky = {**card, "note": "a01"}
    with pytest.raises(LeakError):
        release.write_release(dest, release.bundle_files(arrays, leaky), forbidden)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    smaller = {k: v[:16] for k, v in arrays.items()}
    release.write_release(dest, release.bundle_files(smaller, card), forbidden)
    assert StimuliDataModule(dest).arrays()[0].shape == (16, 4, 60)
    assert leftovers(dest.parent) == []


# --- the third party ------------------------------------------------------------------------------
def third_party_config(owner, tmp_path, data_root, copy_records, *extra):
    """Only the bundle and the third party's own cohort folder; the owner's data root is gone."""
    bundle = shutil.copytree(owner.bundle, tmp_path / "received")
    own = copy_records(
        data_root / "closed-resp", tmp_path / "own-data", ["a01", "c01"], [".edf", "-nsrr.xml"]
    )
    return compose_config(
        [
            "+experiment=third_party",
            f"release_path='{bundle}'",
            "data=closed_resp",
            f"data.root='{own}'",
            f"paths.data_dir='{tmp_path / 'no-owner-data'}'",
            "student=cnn",
            "student_defaults.steps=10",
            "quiet=true",
            "threads=1",
            *extra,
        ],
        tmp_path / "out",
        tmp_path / "tp-cache",
    )


def test_third_party_trains_on_the_bundle_alone(
    owner, tmp_path, data_root, copy_records, monkeypatch
):
    monkeypatch.setenv("STIMULI_DATA", str(tmp_path / "no-owner-data"))
    cfg = third_party_config(owner, tmp_path, data_root, copy_records)
    result = run_pipeline(cfg)
    on_disk = json.loads((tmp_path / "out" / "third_party.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert on_disk["data"]["n_records"] == 2 and on_disk["data"]["n_windows"] > 900
    assert 0 < on_disk["data"]["apnea_fraction"] < 1
    assert on_disk["bundle"]["n"] == 32 and on_disk["bundle"]["shape"] == [4, 60]
    block = on_disk["students"]["cnn"]
    assert set(block) == {"stimuli", "stimuli_kd"}
    for metrics in block.values():
        assert set(metrics) == METRICS
        assert all(0 <= metrics[m] <= 1 for m in ("acc", "auroc", "f1"))
        assert -1 <= metrics["kappa"] <= 1
    assert not (tmp_path / "no-owner-data").exists()


def test_third_party_cohort_must_match_the_bundle(owner, tmp_path, data_root, copy_records):
    cfg = third_party_config(
        owner, tmp_path, data_root, copy_records, "data.window_s=30", "data.stride_s=30"
    )
    with pytest.raises(ValueError, match=r"do not match the bundle's stimuli \(4, 60\)"):
        run_pipeline(cfg)
