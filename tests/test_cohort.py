"""The shared DataModule: items, normalization, the window cache and person splits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

import stimuli.data.apnea_ecg as apnea_ecg
import stimuli.data.cache as cache_mod
import stimuli.data.wfdb_reader as wfdb_reader
from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.data.cache import ARRAYS
from stimuli.data.datasets import RowView
from stimuli.data.recording import CohortError
from stimuli.data.splits import SPLITS, split_by_person
from stimuli.training import array_loader

REPO = Path(__file__).resolve().parent.parent
SMALL = ["a01", "b01", "c01"]  # three persons: the smallest cohort that splits


def digest(cache) -> str:
    h = hashlib.sha256()
    for name in ARRAYS:
        h.update(np.ascontiguousarray(getattr(cache, name)).tobytes())
    return h.hexdigest()


def leftovers(cache_dir: Path) -> list[str]:
    """Temporary entries (dot-names) a build may leave behind in a cache folder."""
    return sorted(p.name for p in cache_dir.iterdir() if p.name.startswith("."))


# --- items and normalization ------------------------------------------------------------------
def test_items(full_dm) -> None:
    train_persons = {full_dm.person_ids.index(p) for p in full_dm.split_persons["train"]}
    for split, ds in full_dm.datasets.items():
        for i in (0, len(ds) // 3, len(ds) - 1):
            x, label, person = ds[i]
            assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
            assert tuple(x.shape) == (1, 1200)
            assert type(label) is int and label in (0, 1)
            assert type(person) is int and 0 <= person < len(full_dm.person_ids)
            assert (person in train_persons) == (split == "train")
            j = ds.indices[i]  # record normalization is baked into the cache: items are its rows
            np.testing.assert_array_equal(x.numpy(), full_dm.cache.x[j])
            assert label == int(full_dm.cache.y[j])
    assert full_dm.norm_stats is None
    assert full_dm.train_person_index() == {
        g: i for i, g in enumerate(sorted(train_persons, key=full_dm.person_ids.__getitem__))
    }


def test_loaders(full_dm) -> None:
    x, y, person = next(iter(full_dm.train_dataloader()))
    assert x.shape == (full_dm.batch_size, 1, 1200) and x.dtype == torch.float32
    assert y.shape == person.shape == (full_dm.batch_size,)
    xv, _, _ = next(iter(full_dm.val_dataloader()))
    torch.testing.assert_close(xv[0], full_dm.datasets["val"][0][0])  # val is not shuffled


def test_record_zscore_centres_each_night(full_dm) -> None:
    x = np.asarray(full_dm.cache.x)
    for i, r in enumerate(full_dm.cache.meta["records"]):
        xi = x[full_dm.cache.record_index == i]
        assert abs(float(xi.mean())) < 0.1, r["record"]
        assert 0.8 < float(xi.std()) < 1.1, r["record"]


def test_global_normalization_uses_train_persons(apnea_root: Path, tmp_path: Path) -> None:
    records = ["a01", "a14", "a02", "a03", "a06", "b01", "c01", "c04"]  # 7 persons
    dm = ApneaECGDataModule(
        root=apnea_root, records=records, normalize="global", cache_dir=tmp_path, progress=False
    )
    dm.setup()
    raw = np.asarray(dm.cache.x)
    assert 0.3 < float(np.nanmean(raw)) < 2.0  # the cache holds RR intervals in seconds
    x_train, _, _ = dm.datasets["train"].arrays()
    np.testing.assert_allclose(x_train.mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(x_train.std(axis=(0, 2)), 1.0, atol=1e-3)
    train_idx = dm.datasets["train"].indices
    np.testing.assert_allclose(dm.norm_stats["mean"], raw[train_idx].mean(axis=(0, 2)), rtol=1e-5)
    np.testing.assert_allclose(dm.norm_stats["std"], raw[train_idx].std(axis=(0, 2)), rtol=1e-5)
    # the statistics come from train persons only, so other splits are not exactly standardized
    x_test, _, _ = dm.datasets["test"].arrays()
    assert abs(float(x_test.mean())) > 1e-3
    assert not np.allclose(dm.norm_stats["mean"], raw.mean(axis=(0, 2)), rtol=1e-4)
    item = dm.datasets["test"][0][0].numpy()
    j = dm.datasets["test"].indices[0]
    np.testing.assert_allclose(
        item, (raw[j] - dm.norm_stats["mean"][0]) / dm.norm_stats["std"][0], rtol=1e-5
    )


def test_views_and_lazy_loaders_read_what_the_arrays_hold(apnea_root: Path, tmp_path: Path) -> None:
    dm = ApneaECGDataModule(
        root=apnea_root, records=SMALL, normalize="global", cache_dir=tmp_path, progress=False
    )
    dm.setup()
    ds = dm.datasets["train"]
    x, y, _ = ds.arrays()
    view = ds.view()
    assert len(view) == len(x)
    np.testing.assert_array_equal(view[5:40], x[5:40])  # normalized like the arrays
    rows = np.array([30, 2, 17])
    np.testing.assert_array_equal(view[rows], x[rows])  # any order
    np.testing.assert_array_equal(view.subset(rows)[1:], x[rows[1:]])
    np.testing.assert_array_equal(ds.labels(), y)
    with pytest.raises(TypeError, match="batches"):
        view[3]
    with pytest.raises(TypeError, match="positions"):
        ds.view(y == 1)
    # the same seed gives the same batches, whether the loader reads arrays or the cache
    eager = list(array_loader(x, y, batch_size=64, shuffle=True, seed=3))
    lazy = list(array_loader(view, y, batch_size=64, shuffle=True, seed=3))
    assert len(eager) == len(lazy) == -(-len(x) // 64)
    for (xe, ye), (xl, yl) in zip(eager, lazy, strict=True):
        torch.testing.assert_close(xl, xe, rtol=0, atol=0)
        torch.testing.assert_close(yl, ye)
    with pytest.raises(ValueError, match="targets"):
        array_loader(view, y[:-1], batch_size=64, shuffle=False)
    # a RowView trains on a subset of an array without copying it, with the subset's batches
    subset = np.flatnonzero(y == 0)
    rows = RowView(x, subset)
    assert rows.shape == (len(subset), *x.shape[1:]) and view.shape == x.shape
    eager = list(array_loader(x[subset], y[subset], batch_size=32, shuffle=True, seed=5))
    lazy = list(array_loader(rows, y[subset], batch_size=32, shuffle=True, seed=5))
    for (xe, ye), (xl, yl) in zip(eager, lazy, strict=True):
        torch.testing.assert_close(xl, xe, rtol=0, atol=0)
        torch.testing.assert_close(yl, ye)


def test_bad_options_are_rejected(apnea_root: Path) -> None:
    with pytest.raises(ValueError, match="normalize"):
        ApneaECGDataModule(root=apnea_root, normalize="minmax")
    with pytest.raises(ValueError, match="modality"):
        ApneaECGDataModule(root=apnea_root, modality="eeg")


# --- the cache ------------------------------------------------------------------------------------
def test_second_datamodule_loads_cache_without_raw_files(
    apnea_root: Path, tmp_path: Path, full_cache_dir: Path, full_summary: dict, monkeypatch
) -> None:
    first = ApneaECGDataModule(
        root=apnea_root, records=SMALL, cache_dir=tmp_path / "a", progress=False
    )
    first.setup()
    assert first.built_cache
    elsewhere = ApneaECGDataModule(
        root=apnea_root, records=SMALL, cache_dir=tmp_path / "b", progress=False
    )
    elsewhere.prepare_data()  # an independent build from the raw files
    assert elsewhere.built_cache

    def no_raw_reads(*args, **kwargs):
        raise AssertionError("a cached setup read a raw file")

    monkeypatch.setattr(ApneaECGDataModule, "read_record", no_raw_reads)
    for name in ("rr_series", "minute_labels", "waveform", "read_apnea_ecg_record"):
        monkeypatch.setattr(wfdb_reader, name, no_raw_reads)
    monkeypatch.setattr(apnea_ecg, "read_apnea_ecg_record", no_raw_reads)
    for name in ("rdann", "rdheader", "rdrecord", "rdsamp"):
        monkeypatch.setattr(wfdb, name, no_raw_reads)

    second = ApneaECGDataModule(
        root=apnea_root, records=SMALL, cache_dir=tmp_path / "a", progress=False
    )
    second.setup()
    assert not second.built_cache
    assert second.cache.path == first.cache.path
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(second.cache, name), getattr(elsewhere.cache, name))
    assert second.cache.meta == elsewhere.cache.meta
    s1, s2 = first.summary(), second.summary()
    assert s1.pop("cache")["built_now"] and not s2.pop("cache")["built_now"]
    assert s1 == s2

    # the session's full cohort, too
    full = ApneaECGDataModule(root=apnea_root, cache_dir=full_cache_dir, progress=False)
    full.prepare_data()
    full.setup()
    summary = full.summary()
    assert summary.pop("cache") == {"path": full_summary["cache"]["path"], "built_now": False}
    assert summary == {k: v for k, v in full_summary.items() if k != "cache"}


def test_cache_key_follows_preprocessing(apnea_root: Path, tmp_path: Path) -> None:
    def entry(**kwargs):
        dm = ApneaECGDataModule(
            root=apnea_root, records=["c01"], cache_dir=tmp_path, progress=False, **kwargs
        )
        cache = dm.load_cache()
        return cache.path.name, dm.built_cache, dm.n_times

    base = entry()
    assert base[1] and base[2] == 1200
    assert entry() == (base[0], False, 1200)
    assert entry(split={"seed": 7}) == (base[0], False, 1200)  # splits do not change windows
    fs = entry(fs=2.0)
    context = entry(context_s=60)
    norm = entry(normalize="none")
    rri = entry(rri={"max_gap_s": 5.0})
    keys = {base[0], fs[0], context[0], norm[0], rri[0]}
    assert len(keys) == 5
    assert fs[1] and context[1] and norm[1] and rri[1]
    assert fs[2] == 600 and context[2] == 720
    assert entry(normalize="global")[:2] == (norm[0], False)  # both cache raw windows
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(keys)


def test_touching_an_input_file_rebuilds(apnea_root: Path, tmp_path: Path, copy_records) -> None:
    root = copy_records(apnea_root, tmp_path / "apnea-ecg", ["c01"], [".hea", ".apn", ".qrs"])
    table = root / "additional-information.txt"
    shutil.copy2(apnea_root / "additional-information_learning-set.txt", table)

    def key():
        dm = ApneaECGDataModule(root=root, cache_dir=tmp_path / "cache", progress=False)
        return dm.load_cache().path.name, dm.built_cache

    k1, built = key()
    assert built and key() == (k1, False)
    seen = {k1}
    for path in (root / "c01.qrs", root / "c01.apn", table):
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        k2, built = key()
        assert built and k2 not in seen, path.name
        seen.add(k2)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old stamp: the old entry
        assert key() == (k1, False), path.name


CONCURRENT_BUILD = textwrap.dedent(
    """
    import hashlib, json, sys, time
    from pathlib import Path

    import numpy as np

    from stimuli.data.apnea_ecg import ApneaECGDataModule
    from stimuli.data.cache import ARRAYS

    root, cache_dir, sync, me = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    records = sys.argv[5].split(",")
    (sync / f"ready-{me}").touch()
    deadline = time.monotonic() + 120
    while len(list(sync.glob("ready-*"))) < 2:  # start building together, imports done
        if time.monotonic() > deadline:
            sys.exit("the other process never became ready")
        time.sleep(0.005)
    dm = ApneaECGDataModule(root=root, records=records, cache_dir=cache_dir, progress=False)
    dm.prepare_data()
    h = hashlib.sha256()
    for name in ARRAYS:
        h.update(np.ascontiguousarray(getattr(dm.cache, name)).tobytes())
    print(json.dumps({"built_now": dm.built_cache, "path": str(dm.cache.path),
                      "digest": h.hexdigest()}))
    """
)


def test_two_processes_build_one_cache(apnea_root: Path, tmp_path: Path) -> None:
    cache_dir, sync = tmp_path / "cache", tmp_path / "sync"
    sync.mkdir()
    script = tmp_path / "build.py"
    script.write_text(CONCURRENT_BUILD)
    procs = [
        subprocess.Popen(
            [sys.executable, script, apnea_root, cache_dir, sync, str(i), ",".join(SMALL)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["built_now"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    assert results[0]["digest"] == results[1]["digest"]
    assert leftovers(cache_dir) == []
    entries = [p for p in cache_dir.iterdir() if p.is_dir()]
    assert [p.name for p in entries] == [Path(results[0]["path"]).name]
    dm = ApneaECGDataModule(root=apnea_root, records=SMALL, cache_dir=cache_dir, progress=False)
    dm.prepare_data()
    assert not dm.built_cache and digest(dm.cache) == results[0]["digest"]


def test_failed_build_leaves_no_entry(apnea_root: Path, tmp_path: Path, monkeypatch) -> None:
    read = ApneaECGDataModule.read_record

    def fail_on_b01(self, name, person):
        if name == "b01":
            raise RuntimeError("reader crashed")
        return read(self, name, person)

    def make():
        return ApneaECGDataModule(
            root=apnea_root, records=SMALL, cache_dir=tmp_path, progress=False
        )

    with monkeypatch.context() as m:  # the reader fails halfway through the records
        m.setattr(ApneaECGDataModule, "read_record", fail_on_b01)
        with pytest.raises(RuntimeError, match="reader crashed"):
            make().prepare_data()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []

    saved = []

    def save_then_fail(path, arr, *args, **kwargs):  # writing fails after the first array
        if saved:
            raise OSError("disk full")
        saved.append(path)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, np.asanyarray(arr))

    with monkeypatch.context() as m:
        m.setattr(cache_mod.np, "save", save_then_fail)
        with pytest.raises(OSError, match="disk full"):
            make().prepare_data()
    assert saved and not Path(saved[0]).exists()  # the half-written folder is gone
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []
    assert leftovers(tmp_path) == []

    dm = make()  # and the lock is free: a later build succeeds
    dm.prepare_data()
    assert dm.built_cache and (dm.cache.path / "meta.json").is_file()


# --- splits ---------------------------------------------------------------------------------------
def _window_persons(dm) -> tuple[np.ndarray, np.ndarray]:
    person = np.array(dm.person_ids)[dm.window_person]
    return person, np.asarray(dm.cache.y)


def test_split_seed(full_dm) -> None:
    persons, y = _window_persons(full_dm)
    same = split_by_person(persons, y, seed=0)
    assert same == split_by_person(persons, y, seed=0) == full_dm.split_persons
    other = split_by_person(persons, y, seed=1)
    assert other != same
    seeds = [split_by_person(persons, y, seed=s) for s in range(2, 6)]
    assert len({str(split) for split in [same, other, *seeds]}) >= 5
    cohort = y.mean()
    for split in (same, other, *seeds):
        assert sorted(p for s in SPLITS for p in split[s]) == sorted(set(persons))
        for s in ("val", "test"):  # stratified: each held-out split's apnea burden ≈ the cohort's
            assert abs(y[np.isin(persons, split[s])].mean() - cohort) < 0.05


def test_split_fractions() -> None:
    rng = np.random.default_rng(0)
    n_persons, per_person = 40, 30
    persons = np.repeat([f"p{i:02d}" for i in range(n_persons)], per_person)
    burden = rng.uniform(0, 1, n_persons)
    y = (rng.uniform(size=persons.size) < np.repeat(burden, per_person)).astype(int)
    for test, val in ((0.25, 0.15), (0.5, 0.25)):
        for seed in range(3):
            split = split_by_person(persons, y, test=test, val=val, seed=seed)
            assert abs(len(split["test"]) - test * n_persons) <= 2, (test, seed)
            assert abs(len(split["val"]) - val * n_persons) <= 2, (val, seed)
            assert len(split["train"]) + len(split["val"]) + len(split["test"]) == n_persons


def test_full_cohort_split_fractions(full_dm) -> None:
    n = len(full_dm.person_ids)
    assert abs(len(full_dm.split_persons["test"]) - 0.25 * n) <= 2
    assert abs(len(full_dm.split_persons["val"]) - 0.15 * n) <= 2


def test_explicit_split_persons(apnea_root: Path, full_cache_dir: Path) -> None:
    dm = ApneaECGDataModule(
        root=apnea_root,
        cache_dir=full_cache_dir,
        split={"test_persons": ["c01", "a01"], "val_persons": ["b01"]},
        progress=False,
    )
    dm.setup()
    assert not dm.built_cache  # the split is not part of the cached windows
    assert dm.split_persons["test"] == ["a01", "c01"]
    assert dm.split_persons["val"] == ["b01"]
    assert len(dm.split_persons["train"]) == 21
    s = dm.summary()["splits"]
    assert s["test"]["records"] == ["a01", "a14", "c01"]  # a14 is a01's second night
    assert s["val"]["records"] == ["b01"]

    bad = ApneaECGDataModule(
        root=apnea_root, cache_dir=full_cache_dir, split={"test_persons": ["zz1"]}, progress=False
    )
    with pytest.raises(CohortError, match="zz1") as err:
        bad.setup()
    assert str(apnea_root) in str(err.value)
