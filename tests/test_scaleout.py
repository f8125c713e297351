"""Scale-out on existing engines: Hydra launchers (joblib, submitit), sharded synthesis, DDP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from stimuli.models import build_model
from stimuli.pipeline import run_pipeline
from tests.conftest import REPO, TINY, compose_config
from tests.wandb_records import read_run

# no audit or release: these tests are about launching jobs that share one cache
JOBS = ["student=logreg,knn", "threads=1", "stages=[data,teacher,synthesize,students,evaluate]"]


def multirun(tmp_path: Path, *overrides: str) -> list[dict]:
    """A 2-job sweep over students through the given launcher; each job's results.json."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "stimuli.run",
        "-m",
        *TINY,
        *JOBS,
        *overrides,
        f"hydra.sweep.dir={sweep}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads((sweep / str(i) / "results.json").read_text()) for i in (0, 1)]


def check_jobs(jobs: list[dict]) -> None:
    assert [set(j["students"]) for j in jobs] == [{"logreg"}, {"knn"}]
    for job in jobs:
        assert 0 <= job["students"][next(iter(job["students"]))]["real"]["acc"] <= 1
    # the jobs share one teacher through the cache: one trains it, the other loads it
    assert jobs[0]["teacher"]["test"] == jobs[1]["teacher"]["test"]
    for stage in ("teacher", "identity", "stimuli", "label_teachers"):
        assert sorted(j["cache"][stage] for j in jobs)[0] == "cached", stage


@pytest.mark.slow
def test_multirun_through_submitit_local(tmp_path):
    jobs = multirun(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    check_jobs(jobs)
    assert list((tmp_path / "sweep" / ".submitit").iterdir()), "submitit left no job folders"


@pytest.mark.slow  # make test runs a joblib multirun with W&B: the Optuna test (test_pipeline)
def test_multirun_through_joblib_one_wandb_run_per_job_grouped_by_sweep(tmp_path):
    check_jobs(multirun(tmp_path, "launcher=joblib", "logger=wandb"))
    folders = [next((tmp_path / "sweep" / str(i) / "wandb").glob("offline-run-*")) for i in (0, 1)]
    runs = [read_run(folder)["run"] for folder in folders]
    assert runs[0].run_group == runs[1].run_group == "apnea_resp/sweep"
    assert [r.display_name for r in runs] == ["apnea_resp-0", "apnea_resp-1"]
    assert runs[0].run_id != runs[1].run_id
    # the multirun ends with a report comparing its jobs
    report = (tmp_path / "sweep" / "sweep_report.html").read_text()
    assert "student=logreg" in report and "student=knn" in report


def stimuli_of(results_dir: Path) -> dict[str, np.ndarray]:
    with np.load(results_dir / "stimuli.npz") as f:
        return {k: f[k] for k in f.files}


def test_sharded_synthesis_merges_to_one_jobs_stimuli(tmp_path):
    shards = tmp_path / "sharded-cache"
    for first, stop in ((1, 2), (0, 1)):  # two jobs, each one shard, in any order
        part = run_pipeline(
            compose_config(
                [*TINY, "stages=[teacher,synthesize]", f"synthesis_shards=[{first},{stop}]"],
                tmp_path / f"shard{first}",
                shards,
            )
        )
        assert part["stimuli"] == {"shards": [first], "n": 16}
        assert not (tmp_path / f"shard{first}" / "stimuli.npz").exists()
    merged = run_pipeline(compose_config([*TINY, "stages=[synthesize]"], tmp_path / "m", shards))
    whole = run_pipeline(
        compose_config([*TINY, "stages=[synthesize]"], tmp_path / "w", tmp_path / "one-job")
    )
    assert merged["stimuli"]["n"] == whole["stimuli"]["n"] == 32
    a, b = stimuli_of(tmp_path / "m"), stimuli_of(tmp_path / "w")
    for key in ("x", "labels", "teacher_probs"):
        np.testing.assert_array_equal(a[key], b[key])
    assert merged["stimuli"]["teacher_agreement"] == whole["stimuli"]["teacher_agreement"]


def test_shard_range_outside_the_synthesis_is_refused(tmp_path):
    cfg = compose_config(
        [*TINY, "stages=[synthesize]", "synthesis_shards=[1,5]"], tmp_path, tmp_path
    )
    with pytest.raises(ValueError, match=r"synthesis_shards=\[1, 5\] is not a range within 0..2"):
        run_pipeline(cfg)


@pytest.mark.slow
def test_ddp_spawn_trains_teacher_and_students_on_two_cpu_processes(tmp_path):
    ddp = [
        "trainer=ddp",
        "trainer.strategy=ddp_spawn",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "student=cnn",
        "threads=1",
        "stages=[teacher,synthesize,students,evaluate]",
    ]
    results = run_pipeline(compose_config([*TINY, *ddp], tmp_path / "out", tmp_path / "cache"))
    assert results["cache"]["teacher"] == "trained"
    for split in ("train", "val", "test"):
        assert 0 <= results["teacher"][split]["acc"] <= 1
    assert {"real", "stimuli", "stimuli_kd"} <= set(results["students"]["cnn"])
    # the students were fitted in the spawned processes and their weights came back
    student = joblib.load(tmp_path / "out" / "students" / "cnn-real.joblib")
    pl.seed_everything(0)
    untrained = build_model("cnn", 4, 2, 60).state_dict()
    trained = student.model_.state_dict()
    assert any(not torch.equal(trained[k], untrained[k]) for k in untrained)
