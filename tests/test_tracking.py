"""W&B (offline), CSV and report outputs of a tiny real run, read back from the files written."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from stimuli.pipeline import job_type, run_pipeline
from tests.conftest import TINY, compose_config
from tests.wandb_records import read_run

# the experiment's default logger (wandb), not TINY's logger=none
TRACKED = [o for o in TINY if o != "logger=none"] + [
    "student=[cnn,logreg]",
    "student_defaults.steps=20",
    "threads=1",
    # the privacy criteria scaled down to seconds
    "privacy.auditor.steps=50",
    "privacy.n_bootstrap=200",
]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("run")
    results = run_pipeline(compose_config(TRACKED, out, tmp_path_factory.mktemp("cache")))
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    return SimpleNamespace(out=out, results=results, run_dir=run_dir, wandb=read_run(run_dir))


def history_keys(wandb: dict) -> set[str]:
    return {k for row in wandb["history"] for k in row}


def test_experiments_log_to_an_offline_wandb_run_in_the_run_folder(tracked):
    run = tracked.wandb["run"]
    assert run.project == "stimuli" and run.job_type == "pipeline"
    assert run.display_name == "apnea_resp" and run.run_group == ""  # a single run: no sweep
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["task_name"] == "apnea_resp" and "paths" not in config


def test_training_curves_of_every_trainer_are_logged(tracked):
    keys = history_keys(tracked.wandb)
    assert {"teacher-train/loss", "teacher-val/kappa", "identity-train/loss"} <= keys
    for variant in ("real", "stimuli", "stimuli_kd"):
        assert f"student-cnn-{variant}-train/loss" in keys


def test_synthesis_loss_terms_are_logged_per_step(tracked):
    rows = [r for r in tracked.wandb["history"] if "synthesis/step" in r]
    assert [r["synthesis/step"] for r in rows] == list(range(8))  # synthesis.steps=8
    assert {"synthesis/total", "synthesis/class", "synthesis/bn", "synthesis/agreement"} <= set(
        rows[0]
    )


def test_summary_holds_the_results(tracked):
    summary, results = tracked.wandb["summary"], tracked.results
    assert summary["teacher/test/kappa"] == results["teacher"]["test"]["kappa"]
    assert (
        summary["students/logreg/stimuli_kd/acc"]
        == results["students"]["logreg"]["stimuli_kd"]["acc"]
    )
    assert summary["stimuli/teacher_agreement"] == results["stimuli"]["teacher_agreement"]


def test_figures_and_tables_are_saved_with_the_run(tracked):
    files = tracked.wandb["files"]
    images = [f for f in files if f.startswith("media/images/figures/")]
    figures = ("utility", "confusion", "stimuli_examples", "stimuli_mean_sd", "stimuli_spectra")
    for name in figures:
        (path,) = [f for f in images if Path(f).name.startswith(f"{name}_")]
        assert (tracked.run_dir / "files" / path).read_bytes()[:8] == PNG
    (utility,) = [f for f in files if Path(f).name.startswith("utility_") and "table" in f]
    table = json.loads((tracked.run_dir / "files" / utility).read_text())
    rows = {(r[1], r[2]): r for r in table["data"]}
    assert set(rows) == {
        (s, v) for s in ("cnn", "logreg") for v in ("real", "stimuli", "stimuli_kd")
    }
    acc = table["columns"].index("acc")
    assert rows[("cnn", "real")][acc] == tracked.results["students"]["cnn"]["real"]["acc"]
    (privacy,) = [f for f in files if Path(f).name.startswith("privacy_") and "table" in f]
    measures = dict(json.loads((tracked.run_dir / "files" / privacy).read_text())["data"])
    audit = tracked.results["privacy"]
    assert measures["leaky/attribution/nn_raw/auc"] == pytest.approx(
        audit["leaky"]["attribution"]["nn_raw"]["auc"]
    )
    assert measures["placebo/dcr/share"] == pytest.approx(audit["placebo"]["dcr"]["share"])


def test_run_writes_its_html_report(tracked):
    html = (tracked.out / "report.html").read_text()
    assert "<table" in html and "data:image/png;base64," in html
    assert f"{tracked.results['teacher']['test']['acc']:.4g}" in html
    # the privacy criteria on this split, and that the mechanism has not been audited
    share = tracked.results["privacy"]["release"]["dcr"]["share"]
    assert f"{share:.4g}" in html
    assert "has not been audited" in html


def test_csv_logger_writes_one_file_per_trainer(tmp_path):
    overrides = [*TINY, "logger=csv", "student=cnn", "student_defaults.steps=20", "threads=1"]
    overrides += ["stages=[teacher,synthesize,students]"]
    run_pipeline(compose_config(overrides, tmp_path / "out", tmp_path / "cache"))
    metrics = {p.parent.name for p in (tmp_path / "out" / "csv").glob("*/metrics.csv")}
    assert {"teacher", "identity", "student-cnn-real", "student-cnn-stimuli_kd"} <= metrics
    assert not (tmp_path / "out" / "wandb").exists()


def test_job_type_names_the_stages():
    every = ["data", "teacher", "synthesize", "students", "evaluate", "privacy", "release"]
    assert job_type(every) == "pipeline"
    assert job_type(every[:-1]) == "data-teacher-synthesize-students-evaluate-privacy"
    assert job_type(["synthesize", "teacher"]) == "teacher-synthesize"
