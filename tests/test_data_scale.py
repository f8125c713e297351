"""The streamed window cache: byte-for-byte the concatenated build, in order, and atomic."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import joblib
import numpy as np
import pytest

from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.data.cache import ARRAYS, WindowWriter
from stimuli.data.windows import cut_windows, normalize_recording

RECORDS = ["a01", "b01", "c01", "c02"]  # three persons; c01 is the third record read


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def concatenated(dm: ApneaECGDataModule, names: list[str]) -> tuple[dict, list[dict]]:
    """The cache arrays the old way: every record's windows in a list, then `np.concatenate`."""
    persons = dm.persons(names)
    before, after = round(dm.context_before_s * dm.fs), round(dm.context_after_s * dm.fs)
    parts, rows = [], []
    for i, name in enumerate(names):
        rec = dm.read_record(name, persons[name])
        w = cut_windows(rec, before, after, signal=normalize_recording(rec.signal))
        parts.append((w, i))
        rows.append({"record": name, "person": persons[name], "windows": len(w.y)})
    arrays = {
        "x": np.concatenate([w.x for w, _ in parts]).astype(np.float32),
        "y": np.concatenate([w.y for w, _ in parts]).astype(np.int64),
        "record_index": np.concatenate([np.full(len(w.y), i) for w, i in parts]).astype(np.int64),
        "segment_index": np.concatenate([w.segment_index for w, _ in parts]).astype(np.int64),
    }
    return arrays, rows


def cache_entries(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def reference(apnea_root: Path) -> tuple[dict, list[dict]]:
    dm = ApneaECGDataModule(root=apnea_root, records=RECORDS, progress=False)
    return concatenated(dm, RECORDS)


@pytest.mark.parametrize(
    ("num_workers", "backend"),
    [
        (0, None),  # in this process, one record after the other
        (3, "threading"),  # joblib's ordered generator, without starting processes
        pytest.param(2, "loky", marks=pytest.mark.slow),  # worker processes import torch: slow
    ],
)
def test_streamed_cache_equals_concatenated(
    apnea_root: Path, tmp_path: Path, reference, num_workers: int, backend: str | None
) -> None:
    dm = ApneaECGDataModule(
        root=apnea_root, records=RECORDS, cache_dir=tmp_path, num_workers=num_workers
    )  # progress on: the bar must not disturb the build
    dm.read_ahead = 1  # chunks of `num_workers` records: the order holds across chunks
    with joblib.parallel_config(backend=backend) if backend else contextlib.nullcontext():
        dm.prepare_data()
    assert dm.built_cache
    arrays, rows = reference
    assert len(arrays["y"]) > 1500
    for name in ARRAYS:  # the files are exactly what np.save wrote for the concatenated arrays
        assert (dm.cache.path / f"{name}.npy").read_bytes() == npy_bytes(arrays[name]), name
        loaded = getattr(dm.cache, name)
        assert loaded.dtype == arrays[name].dtype and loaded.shape == arrays[name].shape
    meta = json.loads((dm.cache.path / "meta.json").read_text())
    assert meta["channels"] == ["rri"] and meta["n_times"] == 1200 and meta["fs"] == 4.0
    assert [{k: r[k] for k in ("record", "person", "windows")} for r in meta["records"]] == rows
    assert [k for k in meta["records"][0]] == [
        "record",
        "person",
        "labelled",
        "windows",
        "apnea",
        "dropped_edge",
        "dropped_invalid",
        "dropped_flat",
    ]
    assert cache_entries(tmp_path) == [dm.cache.path.name]  # no temporary folder left


def test_reader_failing_on_third_record_leaves_nothing(
    apnea_root: Path, tmp_path: Path, monkeypatch
) -> None:
    read = ApneaECGDataModule.read_record
    on_disk = []

    def fail_on_third(self, name, person):
        if name == RECORDS[2]:
            # the first two records are already on disk in the temporary build folder
            (tmp,) = [p for p in tmp_path.iterdir() if p.is_dir()]
            assert tmp.name.startswith(".")
            on_disk.append((tmp, (tmp / "x.npy").stat().st_size))
            raise RuntimeError("reader crashed")
        return read(self, name, person)

    def make() -> ApneaECGDataModule:
        return ApneaECGDataModule(
            root=apnea_root, records=RECORDS, cache_dir=tmp_path, progress=False
        )

    with monkeypatch.context() as m:
        m.setattr(ApneaECGDataModule, "read_record", fail_on_third)
        with pytest.raises(RuntimeError, match="reader crashed"):
            make().prepare_data()
    ((tmp, size),) = on_disk
    assert size > 128 + 900 * 1200 * 4  # header + the windows of a01 and b01
    assert not tmp.exists()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []
    assert cache_entries(tmp_path) == []

    dm = make()  # the lock is free and the next build is complete
    dm.prepare_data()
    assert dm.built_cache and len(dm.cache.meta["records"]) == len(RECORDS)


def test_writer_matches_np_save_with_empty_records(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    counts = [3, 0, 5, 0, 1]
    xs = [rng.normal(size=(n, 2, 7)).astype(np.float32) for n in counts]
    writer = WindowWriter(tmp_path)
    for i, x in enumerate(xs):
        n = len(x)
        writer.append(x, np.arange(n) % 2, np.full(n, i), np.arange(n) + 10 * i)
    writer.close()
    x = np.concatenate(xs)
    assert (tmp_path / "x.npy").read_bytes() == npy_bytes(x)
    assert np.load(tmp_path / "record_index.npy").tolist() == [0, 0, 0, 2, 2, 2, 2, 2, 4]
    assert np.load(tmp_path / "y.npy").dtype == np.int64


def test_writer_rejects_changing_window_shape(tmp_path: Path) -> None:
    writer = WindowWriter(tmp_path)
    writer.append(np.zeros((2, 1, 5), np.float32), np.zeros(2), np.zeros(2), np.arange(2))
    with pytest.raises(ValueError, match="same channels and window length"):
        writer.append(np.zeros((1, 2, 5), np.float32), np.zeros(1), np.zeros(1), np.arange(1))
    with pytest.raises(ValueError, match="labels"):
        writer.append(np.zeros((2, 1, 5), np.float32), np.zeros(1), np.zeros(2), np.arange(2))
    writer.release()
