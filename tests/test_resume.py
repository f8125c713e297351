"""Kill and resume: a job killed with SIGKILL mid-stage, started again with the same command,
ends with the numbers of an uninterrupted run and leaves no half-written file behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stimuli.pipeline import open_job
from tests.conftest import REPO, TINY_RUN, compose_config
from tests.golden_results import comparable, differences, load_golden


def command(run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stimuli.run",
        *TINY_RUN,
        *extra,
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={cache}",
    ]


def kill_when(cmd: list[str], ready, timeout: float = 300) -> None:
    """Start `cmd`, SIGKILL it as soon as `ready()` holds (it must not finish first)."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(
                f"the job ended before the kill point: {proc.stderr.read()[-2000:]}"
            )
        if time.monotonic() - start > timeout:
            proc.kill()
            raise AssertionError("the kill point was never reached")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def half_written(*folders: Path) -> list[str]:
    """Temporary files and folders (dot-prefixed) anywhere below `folders`."""
    return sorted(
        str(p)
        for folder in folders
        for p in folder.rglob(".*")
        if not p.name.endswith(".lock") and p.name not in (".hydra",)
    )


def entries(cache: Path, stage: str) -> list[Path]:
    folder = cache / "stages" / stage
    return [p for p in folder.iterdir() if (p / "meta.json").is_file()] if folder.is_dir() else []


def test_killed_mid_synthesis_resumes_to_the_same_stimuli(tiny_run, tmp_path):
    """The shared run's teacher and identity model (a copy of its cache), stimuli of another
    setting: killed after shard 0 of 2, the job is started again and gives the stimuli an
    uninterrupted job gives."""
    cache, reference_cache = tmp_path / "cache", tmp_path / "reference-cache"
    shutil.copytree(tiny_run.cache, cache)
    shutil.copytree(tiny_run.cache, reference_cache)
    other = ["synthesis.steps=6", "stages=[synthesize]"]
    run_dir = tmp_path / "run"
    cmd = command(run_dir, cache, *other)
    kill_when(cmd, lambda: len(entries(cache, "stimuli_shards")) > 2)  # the shared run's 2 + 1
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["cache"] == {"teacher": "cached", "identity": "cached", "stimuli": "synthesized"}
    reference = open_job(compose_config([*TINY_RUN, *other], tmp_path / "ref", reference_cache))
    with np.load(run_dir / "stimuli.npz") as got:
        for k in got.files:
            np.testing.assert_array_equal(got[k], reference.get("stimuli")[k])
    assert half_written(cache, run_dir) == []


# Kill points: (stage, when the job is inside it).
KILL_POINTS = {
    "teacher": lambda cache, run: any((cache / "stages" / "teacher").glob(".*-*")),
    "identity": lambda cache, run: any((cache / "stages" / "identity").glob(".*-*")),
    "synthesis": lambda cache, run: len(entries(cache, "stimuli_shards")) >= 1,
    "students": lambda cache, run: (run / "students").is_dir(),
    "audit": lambda cache, run: (run / "students" / "random_forest-stimuli_kd.joblib").is_file(),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(KILL_POINTS))
def test_killed_anywhere_resumes_to_the_uninterrupted_numbers(tmp_path, stage):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    cmd = command(run_dir, cache)
    kill_when(cmd, lambda: KILL_POINTS[stage](cache, run_dir))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = comparable(json.loads((run_dir / "results.json").read_text()))
    golden = load_golden()
    # the numbers of the uninterrupted run; which stages came from the cache differs, of course
    assert (
        differences(
            {k: v for k, v in results.items() if k != "cache"},
            {k: v for k, v in golden.items() if k != "cache"},
        )
        == []
    )
    assert half_written(cache, run_dir) == []


def test_a_teacher_killed_mid_fit_resumes_from_its_checkpoint(tmp_path):
    """Killed once its first epoch is checkpointed, the teacher's fit resumes from there (not
    from zero) and ends with the numbers of an uninterrupted fit."""
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    cmd = command(run_dir, cache, "stages=[teacher]", "identity.steps=10")

    def first_epoch_saved() -> bool:
        return any((cache / "resume" / "teacher").glob("*/member0/last.ckpt"))

    kill_when(cmd, first_epoch_saved)
    assert not entries(cache, "teacher")
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming the teacher's fit" in done.stdout + done.stderr
    results = json.loads((run_dir / "results.json").read_text())
    golden = load_golden()["teacher"]
    assert differences(comparable(results["teacher"]), golden) == []
    assert not list((cache / "resume" / "teacher").glob("*/member0"))  # removed once complete
    assert half_written(cache, run_dir) == []
