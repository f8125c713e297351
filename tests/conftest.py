"""Shared fixtures: the real PhysioNet data, one full Apnea-ECG build per session, Hydra configs."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import DictConfig

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.config import compose_config as compose_real_config
from stimuli.data.apnea_ecg import ApneaECGDataModule
from stimuli.paths import data_dir

REPO = Path(__file__).resolve().parent.parent
COHORTS = ("apnea-ecg", "closed-resp", "closed-rri")


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data folder (`STIMULI_DATA` or ../shared/data); missing data fails, not skips."""
    root = Path(data_dir())
    missing = [c for c in COHORTS if not (root / c).is_dir()]
    if missing:
        pytest.fail(
            f"test data not found: {root} lacks {missing}. These tests need the real PhysioNet "
            "cohorts; set STIMULI_DATA to the folder holding apnea-ecg/, closed-resp/ and "
            "closed-rri/ (see shared/data/README.md).",
            pytrace=False,
        )
    return root


@pytest.fixture(scope="session")
def apnea_root(data_root: Path) -> Path:
    return data_root / "apnea-ecg"


@pytest.fixture(scope="session")
def full_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("full-cache")


@pytest.fixture(scope="session")
def full_dm(apnea_root: Path, full_cache_dir: Path) -> ApneaECGDataModule:
    """The whole open cohort (34 records, rri at 4 Hz, 5-min windows), built once per session."""
    dm = ApneaECGDataModule(root=apnea_root, cache_dir=full_cache_dir, progress=False)
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.fixture(scope="session")
def full_summary(full_dm: ApneaECGDataModule) -> dict:
    return full_dm.summary()


@pytest.fixture(scope="session")
def readme_records(apnea_root: Path) -> dict[str, dict[str, int]]:
    """Per-record facts from apnea-ecg/README.md's record table: samples, labelled, A, N, beats."""
    row = re.compile(
        r"^\| ([a-c]\d\d) \| ECG \| 100 \| (\d+) \| [\d.]+ h \| (\d+) \((\d+)/(\d+)\) \| (\d+) \|$"
    )
    table = {}
    for line in (apnea_root / "README.md").read_text().splitlines():
        m = row.match(line.strip())
        if m:
            samples, labelled, a, n, beats = map(int, m.groups()[1:])
            table[m.group(1)] = {
                "samples": samples,
                "labelled": labelled,
                "apnea": a,
                "normal": n,
                "beats": beats,
            }
    assert len(table) == 34, "README.md record table not parsed"
    return table


def copy_record_files(src: Path, dst: Path, names: Iterable[str], suffixes: Sequence[str]) -> Path:
    """Copy `NAME<suffix>` files of a cohort folder into `dst` (for tests that break a layout)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        for suffix in suffixes:
            shutil.copy2(src / f"{name}{suffix}", dst / f"{name}{suffix}")
    return dst


@pytest.fixture(scope="session")
def copy_records() -> Callable[..., Path]:
    """`copy_records(src, dst, names, suffixes)`: see `copy_record_files`."""
    return copy_record_files


def compose_config(overrides: Sequence[str], output_dir: Path, cache_dir: Path) -> DictConfig:
    """The real Hydra config (conf/), with outputs and caches redirected to test folders."""
    return compose_real_config(
        [*overrides, f"paths.output_dir='{output_dir}'", f"paths.cache_dir='{cache_dir}'"]
    )


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., DictConfig]:
    """`make_config(["+experiment=apnea_resp", ...])` → the composed config for this test."""

    def make(overrides: Sequence[str] = ()) -> DictConfig:
        return compose_config(overrides, tmp_path / "out", tmp_path / "cache")

    return make


# --- the one tiny real run the integration tests share ----------------------------------------
# closed-resp (7 one-night persons, 4-channel 60-s windows), every stage, scaled down to seconds.
TINY = [
    "+experiment=apnea_resp",
    "quiet=true",
    "logger=none",
    "teacher.max_epochs=2",
    "teacher.patience=1",
    "identity.steps=10",
    "synthesis.n=32",
    "synthesis.shard_size=16",
    "synthesis.steps=8",
    "student_defaults.steps=10",
    "privacy.auditor.steps=60",
    "privacy.attack_students.mlp.steps=50",
    "privacy.n_bootstrap=200",
    "privacy.dcr.n_bootstrap=100",
]
# The shared run: the teacher's architecture, an MLP and two scikit-learn students, one thread
# (the numbers of tests/golden/tiny_results.json were recorded with exactly this).
TINY_RUN = [*TINY, "student=fast", "threads=1"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A finished tiny run (all default stages, release included) on a fresh cache; tests that
    run more jobs pass its `cache`, so their teacher, identity model and stimuli load."""
    from stimuli.pipeline import run_pipeline

    out = tmp_path_factory.mktemp("tiny-run")
    cache = tmp_path_factory.mktemp("tiny-cache")
    results = run_pipeline(compose_config(TINY_RUN, out, cache))
    return SimpleNamespace(
        out=out,
        cache=cache,
        results=json.loads(json.dumps(results, default=str)),
        live=results,
        bundle=out / "release",
    )
