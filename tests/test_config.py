"""The Hydra configs compose, and the data stage runs through the real entry points."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.utils import get_class
from omegaconf import OmegaConf

from stimuli import pipeline
from stimuli.data.cohort import CohortDataModule
from stimuli.io import read_json

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
KNOWN_TARGETS = {
    "apnea_cnn": "stimuli.data.apnea_ecg.ApneaECGDataModule",
    "apnea_resp": "stimuli.data.edf_cohort.EDFCohortDataModule",
    "apnea_rri_closed": "stimuli.data.edf_cohort.EDFCohortDataModule",
}


def data_group(experiment: str) -> str:
    """The data config an experiment file selects (`- override /data: NAME`).

    Pipeline experiments must select one; `third_party` leaves it to the user (`data=...`), so
    the default (`apnea_ecg`) applies.
    """
    text = (REPO / "conf" / "experiment" / f"{experiment}.yaml").read_text()
    m = re.search(r"override /data:\s*(\w+)", text)
    assert m or experiment not in KNOWN_TARGETS, f"{experiment}.yaml selects no data config"
    return m.group(1) if m else "apnea_ecg"


def test_known_experiments_exist() -> None:
    assert set(KNOWN_TARGETS) <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment: str, make_config, tmp_path: Path, data_root: Path) -> None:
    cfg = make_config([f"+experiment={experiment}"])
    assert cfg.task_name == experiment
    data_file = REPO / "conf" / "data" / f"{data_group(experiment)}.yaml"
    target = yaml.safe_load(data_file.read_text())["_target_"]
    assert cfg.data._target_ == target
    if experiment in KNOWN_TARGETS:
        assert target == KNOWN_TARGETS[experiment]
    assert issubclass(get_class(target), CohortDataModule)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    paths = OmegaConf.to_container(cfg.paths, resolve=True)
    assert paths["output_dir"] == str(tmp_path / "out")
    assert Path(data["root"]).parent == data_root
    assert Path(data["root"]).is_dir()
    assert Path(data["cache_dir"]).is_relative_to(tmp_path / "cache")
    assert data["seed"] == cfg.seed


def test_default_config_is_the_open_cohort(make_config, data_root: Path) -> None:
    cfg = make_config(["data.records=[a01,b01]", "data.fs=2"])
    assert cfg.data._target_ == KNOWN_TARGETS["apnea_cnn"]
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert data["root"] == str(data_root / "apnea-ecg")
    assert data["records"] == ["a01", "b01"] and data["fs"] == 2


@pytest.mark.parametrize(
    ("experiment", "n_records", "n_persons", "fs", "n_times"),
    [("apnea_resp", 7, 7, 1.0, 60), ("apnea_rri_closed", 18, 16, 4.0, 240)],
)
def test_data_stage_writes_summary(
    make_config, tmp_path: Path, experiment, n_records, n_persons, fs, n_times
) -> None:
    cfg = make_config([f"+experiment={experiment}", "stages=[data]", "quiet=true"])
    results = pipeline.run_pipeline(cfg)
    summary = read_json(tmp_path / "out" / "data_summary.json")
    assert summary == results["data"]
    assert summary["n_records"] == n_records and summary["n_persons"] == n_persons
    assert summary["channels"] == list(cfg.data.channels)
    assert summary["fs"] == fs and summary["n_times"] == n_times
    assert summary["n_windows"] == summary["n_labelled"] - sum(summary["dropped"].values()) > 0
    assert Path(summary["cache"]["path"]).is_relative_to(tmp_path / "cache")
    splits = summary["splits"]
    records = [r for s in splits.values() for r in s["records"]]
    assert len(records) == len(set(records)) == n_records
    assert sum(s["windows"] for s in splits.values()) == summary["n_windows"]
    assert sum(s["persons"] for s in splits.values()) == n_persons
    assert all(s["windows"] > 0 for s in splits.values())
    if experiment == "apnea_resp":
        assert len(summary["channels"]) == 4
    if experiment == "apnea_rri_closed":  # the two halves of one night stay together
        split_of = {r: name for name, s in splits.items() for r in s["records"]}
        assert split_of["slp01a"] == split_of["slp01b"]
        assert split_of["slp02a"] == split_of["slp02b"]


def test_unknown_stage(make_config, tmp_path: Path) -> None:
    cfg = make_config(["stages=[data,bogus]"])
    with pytest.raises(ValueError, match="bogus") as err:
        pipeline.run_pipeline(cfg)
    for stage in pipeline.STAGES:
        assert stage in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the CLI also runs in the Optuna sweep and kill-and-resume tests
def test_cli_data_stage(tmp_path: Path, data_root: Path) -> None:
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    cmd = [
        sys.executable,
        "-m",
        "stimuli.run",
        "+experiment=apnea_resp",
        "stages=[data]",
        "quiet=true",
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={cache}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = read_json(run_dir / "data_summary.json")
    assert summary["n_records"] == 7 and summary["n_persons"] == 7
    assert len(summary["channels"]) == 4 and summary["fs"] == 1.0
    assert Path(summary["cache"]["path"]).is_relative_to(cache)
    resolved = yaml.safe_load((run_dir / "config_resolved.yaml").read_text())
    assert resolved["paths"]["output_dir"] == str(run_dir)
    assert resolved["data"]["root"] == str(data_root / "closed-resp")
