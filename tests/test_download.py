"""Downloading Apnea-ECG with wfdb from a loopback server laid out like PhysioNet's file tree."""

from __future__ import annotations

import functools
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.data.recording import CohortError

RECORDS = ["a01", "b01", "c01"]
SUFFIXES = [".hea", ".apn", ".qrs"]
DB_DIR = "apnea-ecg/1.0.0"
TABLE = "additional-information.txt"


class Handler(SimpleHTTPRequestHandler):
    """Plain static files (GET, HEAD, no Range support), remembering each request's path."""

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def site(tmp_path: Path, apnea_root: Path) -> Path:
    """`site/apnea-ecg/1.0.0/` as on physionet.org/files/: RECORDS, records' files, the table."""
    site = tmp_path / "site"
    db = site / DB_DIR
    db.mkdir(parents=True)
    (db / "RECORDS").write_text("".join(f"{r}\n" for r in RECORDS))
    for r in RECORDS:
        for s in SUFFIXES:
            shutil.copy2(apnea_root / f"{r}{s}", db / f"{r}{s}")
    shutil.copy2(apnea_root / "additional-information_learning-set.txt", db / TABLE)
    return site


@pytest.fixture
def server(site: Path, monkeypatch) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server over `site`; yields its base URL and the list of requested paths."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", httpd.seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def make(root: Path, base_url: str, cache: Path, **kwargs) -> ApneaECGDataModule:
    return ApneaECGDataModule(
        root=root,
        download=True,
        physionet={"base_url": base_url},
        cache_dir=cache,
        progress=False,
        **kwargs,
    )


def test_download_then_setup(server, site: Path, tmp_path: Path) -> None:
    url, seen = server
    root = tmp_path / "dl" / "apnea-ecg"
    dm = make(root, url, tmp_path / "cache")
    dm.prepare_data()

    src = site / DB_DIR
    expected = ["RECORDS", TABLE, *(f"{r}{s}" for r in RECORDS for s in SUFFIXES)]
    assert sorted(p.name for p in root.iterdir()) == sorted(expected)
    for name in expected:
        assert (root / name).read_bytes() == (src / name).read_bytes(), name
    assert leftovers(root.parent) == []
    assert f"/{DB_DIR}/RECORDS" in seen and f"/{DB_DIR}/a01.qrs" in seen

    dm.setup()
    s = dm.summary()
    assert s["n_records"] == 3 and s["n_persons"] == 3
    assert sorted(r for split in s["splits"].values() for r in split["records"]) == RECORDS
    assert s["n_labelled"] == 489 + 487 + 484  # README: labelled minutes of a01, b01, c01

    # a folder that has the records is not downloaded again
    n = len(seen)
    again = make(root, url, tmp_path / "cache")
    again.prepare_data()
    assert len(seen) == n and not again.built_cache


def test_download_a_subset(server, tmp_path: Path) -> None:
    url, seen = server
    root = tmp_path / "dl" / "apnea-ecg"
    dm = make(root, url, tmp_path / "cache", records=["a01", "c01"])
    dm.prepare_data()
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [TABLE, *(f"{r}{s}" for r in ("a01", "c01") for s in SUFFIXES)]
    )
    assert not any("b01" in p for p in seen)
    assert [r["record"] for r in dm.cache.meta["records"]] == ["a01", "c01"]


def test_failed_download_leaves_no_partial_folder(server, site: Path, tmp_path: Path) -> None:
    url, seen = server
    (site / DB_DIR / "c01.qrs").unlink()  # the server lacks one file: a 404 after a01 and b01
    root = tmp_path / "dl" / "apnea-ecg"
    with pytest.raises(CohortError) as err:
        make(root, url, tmp_path / "cache").prepare_data()
    assert f"/{DB_DIR}/a01.hea" in seen  # files were fetched before the failure
    msg = str(err.value)
    assert str(root) in msg and url in msg and "data.root" in msg
    assert not root.exists()
    assert leftovers(root.parent) == []


def test_offline_download_says_how_to_use_a_local_copy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "dl" / "apnea-ecg"
    dm = make(root, f"http://127.0.0.1:{port}/", tmp_path / "cache")
    with pytest.raises(CohortError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str(root) in msg and f"127.0.0.1:{port}" in msg
    assert "local copy" in msg and "data.root" in msg and "STIMULI_DATA" in msg
    assert not root.exists()
    assert leftovers(root.parent) == []
