"""Apnea-ECG on the real open cohort: counts, persons, RR series, resp copies, bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.data.recording import CohortError, Recording
from stimuli.data.wfdb_reader import person_table, persons_for, rr_series
from stimuli.data.windows import cut_windows

README_APNEA, README_LABELLED = 6514, 16591  # apnea-ecg/README.md: label totals
RESP_1HZ = ["a01", "a02", "a03", "a04", "b01", "c01", "c02"]  # README: resp_1hz/ records
# README: mean SpO2 in apnea / normal minutes of the 1 Hz copies
README_SPO2 = {
    "a01": (89.1, 96.7),
    "a02": (83.3, 92.3),
    "a03": (88.3, 91.6),
    "a04": (75.9, 93.1),
    "b01": (95.6, 94.5),
    "c01": (None, 92.5),
    "c02": (96.8, 91.5),
}


# --- the full open cohort -----------------------------------------------------------------------
def test_full_cohort_counts(full_summary: dict, full_dm, readme_records: dict) -> None:
    s = full_summary
    assert s["n_records"] == 34
    assert s["n_persons"] == 24
    assert s["n_labelled"] == README_LABELLED
    assert s["n_windows"] == s["n_labelled"] - sum(s["dropped"].values())
    assert s["fs"] == 4.0 and s["window_s"] == 300.0 and s["n_times"] == 1200
    assert s["channels"] == ["rri"]
    assert s["apnea_fraction"] == pytest.approx(README_APNEA / README_LABELLED, abs=0.01)
    assert full_dm.n_chans == 1 and full_dm.n_times == 1200 and full_dm.n_classes == 2
    assert full_dm.cache.x.shape == (s["n_windows"], 1, 1200)

    # per record: the README's label counts, and every labelled minute is a window or a drop
    y = np.asarray(full_dm.cache.y)
    for i, r in enumerate(full_dm.cache.meta["records"]):
        facts = readme_records[r["record"]]
        assert r["labelled"] == facts["labelled"], r["record"]
        dropped = r["dropped_edge"] + r["dropped_invalid"] + r["dropped_flat"]
        assert r["windows"] + dropped == r["labelled"], r["record"]
        assert r["windows"] == int((full_dm.cache.record_index == i).sum())
        assert r["apnea"] == int(y[full_dm.cache.record_index == i].sum())
        assert facts["apnea"] - dropped <= r["apnea"] <= facts["apnea"], r["record"]
        # the first 2 minutes lack 2 minutes of context before them; at the end up to 2 more lack
        # context after them, plus a labelled minute that runs past the end of the signal
        assert 2 <= r["dropped_edge"] <= 5, r["record"]


def test_full_cohort_splits_hold_out_persons(full_summary: dict, full_dm) -> None:
    splits = full_summary["splits"]
    records = full_dm.cache.meta["records"]
    person_of = {r["record"]: r["person"] for r in records}
    persons = {s: set(full_dm.split_persons[s]) for s in splits}
    recs = {s: set(splits[s]["records"]) for s in splits}
    names = ("train", "val", "test")
    for i, a in enumerate(names):
        assert persons[a] and recs[a], a
        for b in names[i + 1 :]:
            assert not persons[a] & persons[b], (a, b)
            assert not recs[a] & recs[b], (a, b)
    assert set().union(*recs.values()) == set(person_of)
    assert set().union(*persons.values()) == set(person_of.values())
    for s in names:  # every person's records sit in that person's split
        assert {person_of[r] for r in recs[s]} == persons[s]
        assert splits[s]["persons"] == len(persons[s])
    split_of = {r: s for s in names for r in recs[s]}
    assert split_of["a01"] == split_of["a14"]
    assert split_of["a05"] == split_of["a10"] == split_of["a20"]
    assert sum(splits[s]["windows"] for s in names) == full_summary["n_windows"]
    # and window by window: each split's items belong to that split's persons only
    for s in names:
        idx = full_dm.datasets[s].indices
        item_persons = {full_dm.person_ids[p] for p in np.unique(full_dm.window_person[idx])}
        assert item_persons == persons[s]


# --- who is who -----------------------------------------------------------------------------------
def test_person_table_groups_nights_of_one_person(apnea_root: Path) -> None:
    table = person_table(apnea_root)
    assert len(table) == 34
    assert len(set(table.values())) == 24
    assert table["a01"] == table["a14"]
    assert table["a05"] == table["a10"] == table["a20"]
    assert table["b04"] == table["c08"]
    assert table["c02"] == table["c09"]
    assert table["c01"] != table["c10"]  # same sex and height, different age and weight
    assert table["a01"] != table["a02"]


def test_without_additional_information_each_record_is_a_person(
    apnea_root: Path, tmp_path: Path, copy_records
) -> None:
    root = copy_records(
        apnea_root, tmp_path / "apnea-ecg", ["a01", "a14", "b01"], [".hea", ".apn", ".qrs"]
    )
    with pytest.warns(UserWarning, match="additional-information"):
        assert persons_for(root, ["a01", "a14", "b01"]) == {
            "a01": "a01",
            "a14": "a14",
            "b01": "b01",
        }
    dm = ApneaECGDataModule(root=root, cache_dir=tmp_path / "cache", progress=False)
    with pytest.warns(UserWarning, match="own person"):
        dm.setup()
    assert dm.summary()["n_persons"] == 3
    # with the table beside them, a01 and a14 are one person again
    shutil.copy2(apnea_root / "additional-information_learning-set.txt", root)
    assert persons_for(root, ["a01", "a14", "b01"]) == {"a01": "a01", "a14": "a01", "b01": "b01"}


# --- RR intervals -------------------------------------------------------------------------------
@pytest.mark.parametrize("record", ["a02", "b04", "c10"])
def test_rr_series_range_and_length(apnea_root: Path, record: str) -> None:
    fs = 4.0
    header = wfdb.rdheader(str(apnea_root / record))
    rr = rr_series(apnea_root, record, fs)
    assert rr.dtype == np.float32
    assert rr.shape == (1, header.sig_len // 100 * 4) == (1, round(header.sig_len / header.fs * fs))
    finite = rr[np.isfinite(rr)]
    assert finite.size > 0.9 * rr.size
    assert finite.min() >= 0.3 and finite.max() <= 2.0
    # a narrower plausible range is honoured too
    narrow = rr_series(apnea_root, record, fs, min_rr_s=0.6, max_rr_s=1.2)
    assert np.nanmin(narrow) >= 0.6 and np.nanmax(narrow) <= 1.2


def test_max_gap_makes_nan_that_is_dropped(full_summary: dict, full_dm, apnea_root: Path) -> None:
    assert full_summary["dropped"]["invalid"] > 0
    gappy = [r["record"] for r in full_dm.cache.meta["records"] if r["dropped_invalid"] > 0]
    record = gappy[0]
    assert np.isnan(rr_series(apnea_root, record, 4.0, max_gap_s=10.0)).any()
    assert not np.isnan(rr_series(apnea_root, record, 4.0, max_gap_s=1e6)).any()
    # no NaN reaches the cached windows or any item
    assert np.isfinite(np.asarray(full_dm.cache.x)).all()
    for split, ds in full_dm.datasets.items():
        for i in (0, len(ds) // 2, len(ds) - 1):
            assert bool(ds[i][0].isfinite().all()), split


def test_configured_max_gap_reaches_the_reader(full_dm, apnea_root: Path, tmp_path: Path) -> None:
    meta = {r["record"]: r for r in full_dm.cache.meta["records"]}
    record = next(name for name, r in meta.items() if r["dropped_invalid"] > 0)
    dm = ApneaECGDataModule(
        root=apnea_root,
        records=[record],
        rri={"min_rr_s": 0.3, "max_rr_s": 2.0, "max_gap_s": 1e6},
        cache_dir=tmp_path,
        progress=False,
    )
    (r,) = dm.load_cache().meta["records"]
    assert r["dropped_invalid"] == 0
    assert r["windows"] == meta[record]["windows"] + meta[record]["dropped_invalid"]


# --- the 1 Hz respiration copies ----------------------------------------------------------------
def test_resp_1hz_records(apnea_root: Path, tmp_path: Path) -> None:
    dm = ApneaECGDataModule(
        root=apnea_root,
        modality="resp",
        fs=1.0,
        resp_record="resp_1hz/{name}r_1hz",
        normalize="none",
        cache_dir=tmp_path,
        progress=False,
    )
    assert dm.selected_records() == RESP_1HZ
    dm.setup()
    s = dm.summary()
    assert s["n_records"] == 7 and s["n_persons"] == 7
    assert s["channels"] == ["Resp C", "Resp A", "Resp N", "SpO2"]
    assert dm.n_chans == 4 and s["n_times"] == 300 and s["window_s"] == 300.0
    x, label, person = dm.datasets["train"][0]
    assert tuple(x.shape) == (4, 300) and label in (0, 1) and isinstance(person, int)
    assert np.isfinite(np.asarray(dm.cache.x)).all()
    # labels line up with the signals: the README's mean SpO2 of apnea / normal minutes
    cache = dm.cache
    for i, r in enumerate(cache.meta["records"]):
        sel = cache.record_index == i
        spo2 = np.asarray(cache.x[sel])[:, 3, 120:180].mean(axis=1)  # the labelled minute
        y = np.asarray(cache.y[sel])
        want_a, want_n = README_SPO2[r["record"]]
        assert spo2[y == 0].mean() == pytest.approx(want_n, abs=2.0), r["record"]
        if want_a is not None:
            assert spo2[y == 1].mean() == pytest.approx(want_a, abs=2.0), r["record"]
        if r["record"].startswith("a"):
            assert spo2[y == 1].mean() < spo2[y == 0].mean() - 2


# --- bad input: a CohortError that names the path and says what to do ---------------------------
def test_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "nowhere" / "apnea-ecg"
    dm = ApneaECGDataModule(root=root, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(CohortError) as err:
        dm.prepare_data()
    assert str(root) in str(err.value)
    assert "data.root" in str(err.value) and "STIMULI_DATA" in str(err.value)


def test_empty_folder(tmp_path: Path) -> None:
    root = tmp_path / "apnea-ecg"
    root.mkdir()
    (root / "notes.txt").write_text("nothing here")
    dm = ApneaECGDataModule(root=root, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(CohortError, match="no records") as err:
        dm.setup()
    assert (
        str(root) in str(err.value) and ".apn" in str(err.value) and "data.root" in str(err.value)
    )


def test_rri_without_qrs(apnea_root: Path, tmp_path: Path, copy_records) -> None:
    root = copy_records(apnea_root, tmp_path / "apnea-ecg", ["a01"], [".hea", ".apn"])
    shutil.copy2(apnea_root / "additional-information_learning-set.txt", root)
    dm = ApneaECGDataModule(root=root, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(CohortError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str(root / "a01.qrs") in msg and "rri" in msg and ".qrs" in msg
    assert "data.records" in msg
    # and the reader itself says the same when called directly
    with pytest.raises(CohortError, match=re.escape(str(root / "a01.qrs"))):
        rr_series(root, "a01", 4.0)


def test_ecg_without_dat(apnea_root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dm = ApneaECGDataModule(
        root=apnea_root, modality="ecg", records=["a01"], cache_dir=cache, progress=False
    )
    with pytest.raises(CohortError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str(apnea_root / "a01.dat") in msg and ".dat" in msg and "download" in msg
    assert not cache.exists() or not any(cache.iterdir())


def test_unknown_record(apnea_root: Path, tmp_path: Path) -> None:
    dm = ApneaECGDataModule(root=apnea_root, records=["a01", "z99"], cache_dir=tmp_path)
    with pytest.raises(CohortError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str(apnea_root) in msg and "z99" in msg and "data.records" in msg


@pytest.mark.parametrize("records", [["a01", "a14"], ["a01", "b01"]], ids=["one-person", "two"])
def test_too_few_persons_to_split(apnea_root: Path, tmp_path: Path, records: list[str]) -> None:
    dm = ApneaECGDataModule(root=apnea_root, records=records, cache_dir=tmp_path, progress=False)
    dm.prepare_data()  # reading and caching work; only the split cannot be made
    with pytest.raises(CohortError) as err:
        dm.setup()
    msg = str(err.value)
    assert str(apnea_root) in msg and "persons" in msg and "data.records" in msg
    assert "n_splits" not in msg  # a sentence for people, not scikit-learn's k-fold complaint


def test_cut_windows_drops_nan_and_flat() -> None:
    rng = np.random.default_rng(0)
    n_seg, seg = 12, 60
    signal = rng.normal(size=(2, n_seg * seg)).astype(np.float32)
    signal[0, 2 * seg + 10 : 2 * seg + 20] = np.nan  # segment 2: a NaN stretch in one channel
    signal[:, 5 * seg : 6 * seg] = 0.5  # segment 5: every channel flat (recorder disconnected)
    signal[1, 8 * seg : 9 * seg] = 97.0  # segment 8: one steady channel (SpO2-like), other varies
    segments = np.stack([np.arange(n_seg) * seg, np.arange(1, n_seg + 1) * seg], axis=1)
    labels = np.arange(n_seg) % 2
    rec = Recording("syn", "p", signal, 1.0, ["a", "b"], segments, labels)

    w = cut_windows(rec, 0, 0)
    assert w.dropped_invalid == 1 and w.dropped_flat == 1 and w.dropped_edge == 0
    assert w.segment_index.tolist() == [i for i in range(n_seg) if i not in (2, 5)]
    assert 8 in w.segment_index  # the single steady channel is kept
    assert w.y.tolist() == labels[w.segment_index].tolist()
    assert w.x.shape == (n_seg - 2, 2, seg) and np.isfinite(w.x).all()
    np.testing.assert_array_equal(
        w.x[w.segment_index.tolist().index(8)], signal[:, 8 * seg : 9 * seg]
    )

    # with context, windows overlapping the NaN stretch go too, and the first/last run off the edge
    w = cut_windows(rec, 30, 30)
    assert w.dropped_edge == 2
    assert w.dropped_invalid == 2  # windows of segments 1 and 2 reach samples 130-139
    assert w.dropped_flat == 0  # context around segment 5 varies
    assert w.x.shape[2] == seg + 60
    assert w.segment_index.tolist() == [i for i in range(1, n_seg - 1) if i not in (1, 2)]
