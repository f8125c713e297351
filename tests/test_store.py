"""The artifact store: built once, loaded after, and a damaged entry is reported and rebuilt."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from stimuli.store import CHECKSUMS, ArtifactStore


def writer(calls: list[int]):
    def write(folder: Path) -> dict:
        calls.append(1)
        np.save(folder / "weights.npy", np.arange(1000, dtype=np.float32) * len(calls))
        return {"n": 1000}

    return write


def test_an_entry_is_built_once_then_loaded(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    first = store.entry("teacher", "k1", writer(calls))
    again = store.entry("teacher", "k1", writer(calls))
    assert (first.built, again.built, len(calls)) == (True, False, 1)
    assert again.meta == {"n": 1000} and (again.path / CHECKSUMS).is_file()
    assert set(json.loads((again.path / CHECKSUMS).read_text())) == {"meta.json", "weights.npy"}


@pytest.mark.parametrize("harm", ["flip", "truncate", "extra", "meta"])
def test_a_damaged_entry_is_named_and_rebuilt(tmp_path, caplog, harm):
    store, calls = ArtifactStore(tmp_path), []
    path = store.entry("stimuli", "k2", writer(calls)).path
    target = path / ("meta.json" if harm == "meta" else "weights.npy")
    data = bytearray(target.read_bytes())
    if harm == "flip":
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif harm in ("truncate", "meta"):
        target.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (path / "stray.bin").write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="stimuli.data.cache"):
        entry = store.entry("stimuli", "k2", writer(calls))
    assert entry.built and len(calls) == 2
    assert str(path) in caplog.text and "rebuilding" in caplog.text
    assert np.load(entry.path / "weights.npy")[1] == 2.0  # the new build, not the damaged one
    assert not (entry.path / "stray.bin").exists()
    # and the rebuilt entry loads again without a rebuild
    assert not store.entry("stimuli", "k2", writer(calls)).built and len(calls) == 2


def test_a_full_disk_names_the_entry_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from stimuli.io import DiskFullError

    store, calls = ArtifactStore(tmp_path), []

    def fills_the_disk(folder: Path) -> dict:
        calls.append(1)
        (folder / "part.bin").write_bytes(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=r"stimuli/k3: no space left for the stimuli cache"):
        store.entry("stimuli", "k3", fills_the_disk)
    stage = tmp_path / "stages" / "stimuli"
    assert [p.name for p in stage.iterdir() if not p.name.endswith(".lock")] == []
    # a later job with space builds it
    assert store.entry("stimuli", "k3", writer(calls)).built


def test_a_full_disk_keeps_the_previous_release(tmp_path, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    from stimuli.io import DiskFullError
    from stimuli.release import bundle
    from stimuli.release.forbidden import ForbiddenInfo

    dest = tmp_path / "release"
    dest.mkdir()
    (dest / "stimuli.npz").write_bytes(b"old bundle")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(100, 90, 10))
    files = {"stimuli.npz": b"y" * 1000, "datacard.json": b"{}"}
    nothing = ForbiddenInfo()
    monkeypatch.setattr(bundle, "check_leaks", lambda files, forbidden: [])
    with pytest.raises(DiskFullError, match=r"release: no space left for the release: .*needs"):
        bundle.write_release(dest, files, nothing)
    assert (dest / "stimuli.npz").read_bytes() == b"old bundle"
    assert [p.name for p in tmp_path.iterdir()] == ["release"]


def _slow_teacher(root: str, out: str) -> None:
    """One job needing the (uncached) teacher: builds it slowly, or waits and loads it."""
    import time

    def write(folder: Path) -> dict:
        (folder / "model.pt").write_bytes(b"w" * 100_000)
        time.sleep(1.0)  # a long training, during which the other job arrives
        return {"trained_by": out}

    entry = ArtifactStore(Path(root)).entry("teacher", "race", write)
    Path(out).write_text(json.dumps({"built": entry.built, "meta": entry.meta}))


def test_racing_jobs_build_one_entry_and_neither_reads_a_partial_one(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"job{i}.json" for i in (0, 1)]
    jobs = [ctx.Process(target=_slow_teacher, args=(str(tmp_path), str(o))) for o in outs]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(60)
    assert [job.exitcode for job in jobs] == [0, 0]
    results = [json.loads(o.read_text()) for o in outs]
    assert sorted(r["built"] for r in results) == [False, True]  # one built, one waited
    assert results[0]["meta"] == results[1]["meta"]  # both read the finished entry
    stage = tmp_path / "stages" / "teacher"
    assert sorted(p.name for p in stage.iterdir()) == ["race", "race.lock"]  # no temp folder
    assert (stage / "race" / "model.pt").stat().st_size == 100_000


def test_a_damaged_window_cache_is_named_and_rebuilt(apnea_root, tmp_path, caplog):
    from stimuli.data.apnea_ecg import ApneaECGDataModule

    def build():
        dm = ApneaECGDataModule(
            root=apnea_root, records=["a01", "b01"], cache_dir=tmp_path, progress=False
        )
        dm.prepare_data()
        return dm

    first = build()
    x = np.array(first.cache.x)
    target = first.cache.path / "x.npy"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0xFF  # one window's last sample
    target.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="stimuli.data.cache"):
        again = build()
    assert again.built_cache and str(first.cache.path) in caplog.text
    np.testing.assert_array_equal(np.array(again.cache.x), x)


def test_a_release_killed_mid_write_is_recovered_by_the_next(tmp_path, monkeypatch):
    from stimuli.release import bundle
    from stimuli.release.forbidden import ForbiddenInfo

    monkeypatch.setattr(bundle, "check_leaks", lambda files, forbidden: [])
    # a kill between moving the old bundle aside and renaming the new one into place
    (tmp_path / ".release.old-1234abcd").mkdir()
    (tmp_path / ".release.old-1234abcd" / "stimuli.npz").write_bytes(b"previous")
    (tmp_path / ".release.tmp-xyz").mkdir()
    (tmp_path / ".release.tmp-xyz" / "stimuli.npz").write_bytes(b"half")
    (tmp_path / ".results.abc.json").write_bytes(b"{")  # a killed atomic write
    files = {"stimuli.npz": b"new", "datacard.json": b"{}"}
    bundle.write_release(tmp_path / "release", files, ForbiddenInfo())
    from stimuli.io import write_json

    write_json(tmp_path / "results.json", {"ok": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release", "results.json"]
    assert (tmp_path / "release" / "stimuli.npz").read_bytes() == b"new"
