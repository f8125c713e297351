"""Tiny real runs of the whole pipeline on closed-resp (7 nights, 4-channel 60-s windows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from stimuli import pipeline
from stimuli.evaluate import evaluate_run
from stimuli.identity import IdentityEnsemble
from stimuli.keys import stage_keys
from stimuli.metrics import METRIC_NAMES
from stimuli.pipeline import open_job, run_pipeline
from tests.conftest import REPO, TINY, compose_config
from tests.golden_results import comparable, differences, load_golden
from tests.wandb_records import read_run

METRICS = set(METRIC_NAMES)


def run_tiny(tmp: Path, cache: Path, *extra: str) -> dict:
    cfg = compose_config([*TINY, "student=fast", *extra], tmp, cache)
    return run_pipeline(cfg)


EXACT_BLOCKS = ("experiment", "seed", "data", "teacher", "identity_model")


@pytest.fixture
def finished(tiny_run) -> tuple[Path, dict, Path]:
    return tiny_run.out, tiny_run.live, tiny_run.cache


def test_tiny_run_numbers_are_those_recorded_before_the_stage_functions(tiny_run):
    """The data, teacher and identity-model numbers of results.json as the pipeline gave them
    before it became stage functions over an artifact store (tests/golden/). What follows
    synthesis is left out: on unchanged code, this session's machine gave stimulus losses 1e-4
    apart from the machine that recorded them (CPU kernels), and the students follow."""
    golden = {k: v for k, v in load_golden().items() if k in EXACT_BLOCKS}
    assert set(golden) == set(EXACT_BLOCKS)
    assert differences(comparable(tiny_run.results), golden) == []


def test_results_json_has_every_block(finished):
    out, _, _ = finished
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["experiment"] == "apnea_resp"
    assert on_disk["seed"] == 0
    assert on_disk["data"]["n_records"] == 7
    assert set(on_disk["teacher"]["test"]) == METRICS
    assert 0 <= on_disk["identity_model"]["acc"] <= 1
    stim = on_disk["stimuli"]
    assert stim["n"] == 32 and stim["steps"] == 8 and 0 <= stim["teacher_agreement"] <= 1
    assert stim["seconds"] > 0
    assert set(on_disk["students"]) == {"cnn", "mlp", "logreg", "random_forest"}
    for block in on_disk["students"].values():
        assert set(block["real"]) == METRICS and set(block["stimuli"]) == METRICS
        assert block["gap"]["acc"] == pytest.approx(
            block["real"]["acc"] - block["stimuli"]["acc"], abs=1e-3
        )
        assert "stimuli_kd" in block and "gap_kd" in block
    assert set(on_disk["timing"]) == set(pipeline.STAGES)
    # the privacy criteria on this one split: a summary here, the per-person scores beside it
    privacy = on_disk["privacy"]
    assert privacy["label"] == "one split, not a verdict"
    assert set(privacy) >= {"auditor", "release", "leaky", "leaky_balanced", "placebo"}
    assert set(privacy["release"]) == {"attribution", "in_out", "anonymeter", "dcr", "spread"}
    assert on_disk["verdict"]["anonymity"] == "not audited"
    details = json.loads((out / "privacy.json").read_text())
    assert details["summary"] == privacy and "releases" in details["details"]
    names = (
        "teacher.pt",
        "stimuli.npz",
        "data_summary.json",
        "config_resolved.yaml",
        "report.html",
    )
    for name in names:
        assert (out / name).is_file()
    assert len(list((out / "students").glob("*.joblib"))) == 4 * 3


@pytest.mark.slow  # the golden test compares the shared run with numbers recorded earlier
def test_same_seed_same_numbers(finished, tmp_path):
    _, first, _ = finished
    again = run_tiny(tmp_path / "out", tmp_path / "cache", "threads=1")  # fresh cache
    assert again["cache"] == {
        "teacher": "trained",
        "identity": "trained",
        "stimuli": "synthesized",
        "label_teachers": "trained",
    }
    assert again["teacher"]["test"] == first["teacher"]["test"]
    assert again["soft_labels"] == first["soft_labels"]
    assert again["students"] == first["students"]
    assert again["stimuli"]["teacher_agreement"] == first["stimuli"]["teacher_agreement"]


def test_second_job_reuses_teacher_identity_and_stimuli(finished, tmp_path, monkeypatch):
    _, first, cache = finished

    def no_training(*args, **kwargs):
        raise AssertionError("the teacher was trained again although it is cached")

    monkeypatch.setattr("stimuli.teacher.train_teacher", no_training)
    monkeypatch.setattr("stimuli.identity.train_identity_ensemble", no_training)
    monkeypatch.setattr("stimuli.synthesis.shards.synthesize", no_training)
    second = run_tiny(
        tmp_path / "out", cache, "student=logreg", "stages=[teacher,students,evaluate]"
    )
    assert second["cache"] == {
        "teacher": "cached",
        "identity": "cached",
        "stimuli": "cached",
        "label_teachers": "cached",
    }
    assert second["teacher"]["test"] == first["teacher"]["test"]
    assert set(second["students"]) == {"logreg"}


def test_evaluate_scores_a_finished_run_on_other_records(finished, data_root):
    out, _, cache = finished
    cfg = compose_config([*TINY, "data.records=[a01,c01]"], out / "unused", cache)
    result = evaluate_run(out, cfg.data, quiet=True)
    assert result["data"]["n_records"] == 2
    assert set(result["teacher"]) == METRICS
    assert set(result["students"]["cnn"]) == {"real", "stimuli", "stimuli_kd"}
    assert json.loads((out / "evaluation.json").read_text())["data"]["n_windows"] > 900


def test_shard_probe_scores_shard_zero_with_the_auditor(finished, tmp_path, monkeypatch):
    from experiments import shard_probe

    cache = finished[2]
    monkeypatch.setattr(shard_probe, "OUT", tmp_path / "probe.json")
    common = [*TINY, f"paths.cache_dir={cache}", "privacy.auditor.steps=20"]
    shard_probe.main(
        ["base", " ".join([*common, "synthesis.smoothing=0"]), "smooth", " ".join(common)]
    )
    rows = {r["name"]: r for r in json.loads((tmp_path / "probe.json").read_text())}
    assert set(rows) == {"base", "smooth"}
    base, smooth = rows["base"], rows["smooth"]  # without and with the default low-pass
    assert base["n"] == smooth["n"] == 16  # shard 0 of the tiny run
    n_persons = len(base["auditor"]["counts"])
    assert sum(base["auditor"]["counts"]) == sum(base["neighbour_raw"]["counts"]) == 16
    assert 1 <= base["auditor"]["top1_ratio"] <= n_persons
    assert 0 <= base["teacher_agreement"] <= 1
    assert smooth["high_band_median"] < base["high_band_median"]
    low, high = base["real_high_band_person_range"]
    assert 0 <= low <= high <= 1


def test_unknown_stage_is_refused(tmp_path):
    cfg = compose_config([*TINY, "stages=[data,distill]"], tmp_path, tmp_path / "c")
    with pytest.raises(ValueError, match="known stages"):
        run_pipeline(cfg)


@pytest.mark.slow  # tests/test_scaleout.py checks the same through joblib and submitit
def test_multirun_over_students_trains_the_teacher_once(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "stimuli.run",
        "-m",
        *TINY,
        "student=logreg,knn",
        "stages=[data,teacher,synthesize,students,evaluate]",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=600)
    jobs = [json.loads((tmp_path / "sweep" / str(i) / "results.json").read_text()) for i in (0, 1)]
    assert jobs[0]["cache"]["teacher"] == "trained"
    assert set(jobs[1]["cache"].values()) == {"cached"}  # teacher, identity, stimuli, labels
    assert set(jobs[1]["cache"]) == {"teacher", "identity", "stimuli", "label_teachers"}
    assert set(jobs[0]["students"]) == {"logreg"} and set(jobs[1]["students"]) == {"knn"}


def test_identity_ensemble_judges_the_stimuli_together(tmp_path):
    ensemble = "identity.ensemble=[{_target_:stimuli.models.mlp.MLP,_partial_:true}]"
    cfg = compose_config([*TINY, ensemble, "stages=[teacher,synthesize]"], tmp_path, tmp_path)
    results = run_pipeline(cfg)
    accs = results["identity_model"]["member_acc"]
    assert len(accs) == 2 and accs[0] == results["identity_model"]["acc"]
    job = open_job(cfg)
    ensemble_model = job.get("identity")  # from the cache: both members
    assert job.results["cache"]["identity"] == "cached"
    assert isinstance(ensemble_model, IdentityEnsemble) and len(ensemble_model.members) == 2
    x = torch.from_numpy(job.get("dm").datasets["train"].arrays()[0][:5])
    logits = ensemble_model(x)
    n_persons = results["identity_model"]["n_persons"]
    assert logits.shape == (10, n_persons)  # both members' logits, stacked along the batch
    assert torch.equal(logits[5:], ensemble_model.members[1](x))
    assert results["stimuli"]["losses"]["identity_uniform"] >= 0


def test_competition_pits_later_shards_against_a_student_of_earlier_ones(tmp_path, monkeypatch):
    seen: list[tuple[int, int]] = []  # (shard, stimuli the competitor learned from)
    from stimuli.students.neural import NeuralStudent

    fit = NeuralStudent.fit

    def recording_fit(self, x, y, soft=None):
        seen.append((len(seen) + 1, len(x)))
        return fit(self, x, y, soft=soft)

    monkeypatch.setattr(NeuralStudent, "fit", recording_fit)
    extra = ["synthesis.weights.competition=1.0", "synthesis.competitor_steps=5"]
    cfg = compose_config([*TINY, *extra, "stages=[teacher,synthesize]"], tmp_path, tmp_path)
    results = run_pipeline(cfg)
    assert seen == [(1, 16)]  # 2 shards of 16: shard 1 faces a student of shard 0
    history = results["stimuli"]["losses"]
    assert 0 <= history["competition"] <= 1
    plain = compose_config([*TINY, "stages=[teacher,synthesize]"], tmp_path / "p", tmp_path)
    assert stage_keys(plain)["stimuli"] != stage_keys(cfg)["stimuli"]
    assert stage_keys(plain)["teacher"] == stage_keys(cfg)["teacher"]
    # the competitor's settings (student_defaults) shape the stimuli: a change re-synthesizes
    other_lr = compose_config([*TINY, *extra, "student_defaults.lr=0.01"], tmp_path, tmp_path)
    assert stage_keys(other_lr)["stimuli"] != stage_keys(cfg)["stimuli"]
    assert stage_keys(other_lr)["teacher"] == stage_keys(cfg)["teacher"]
    # without competition they do not
    plain_lr = compose_config([*TINY, "student_defaults.lr=0.01"], tmp_path, tmp_path)
    assert stage_keys(plain_lr)["stimuli"] == stage_keys(plain)["stimuli"]


def test_settings_left_at_their_default_do_not_change_cache_keys(tmp_path):
    base = stage_keys(compose_config(TINY, tmp_path, tmp_path))
    explicit = compose_config(
        [
            *TINY,
            "teacher.n_models=1",
            "identity.adv_eps=0",
            "synthesis.weights.identity_mixture=0",
        ],
        tmp_path,
        tmp_path,
    )
    assert stage_keys(explicit) == base
    # a plain teacher (adv_eps 0) is keyed as before the setting existed
    plain = compose_config([*TINY, "teacher.adv_eps=0"], tmp_path, tmp_path)
    absent = compose_config([*TINY, "~teacher.adv_eps"], tmp_path, tmp_path)
    assert stage_keys(plain)["teacher"] == stage_keys(absent)["teacher"]
    assert stage_keys(plain)["teacher"] != base["teacher"]  # the default is robust
    robust = stage_keys(compose_config([*TINY, "identity.adv_eps=0.1"], tmp_path, tmp_path))
    assert robust["teacher"] == base["teacher"]
    assert robust["identity"] != base["identity"] and robust["stimuli"] != base["stimuli"]
    robust_teacher = compose_config([*TINY, "teacher.adv_eps=0.05"], tmp_path, tmp_path)
    assert stage_keys(robust_teacher)["teacher"] != base["teacher"]
    # smoothing 0 (off) is keyed as before the setting existed; the default (2) is not
    absent = compose_config([*TINY, "~synthesis.smoothing"], tmp_path, tmp_path)
    off = compose_config([*TINY, "synthesis.smoothing=0"], tmp_path, tmp_path)
    assert stage_keys(off) == stage_keys(absent)
    assert stage_keys(off)["teacher"] == base["teacher"]
    assert stage_keys(off)["stimuli"] != base["stimuli"]
    # soft labels: a config from before the setting (a finished job's) keys every stage but the
    # label teachers as the default does; the number of label teachers keys only them
    absent = stage_keys(compose_config([*TINY, "~soft_labels"], tmp_path, tmp_path))
    assert {k: v for k, v in absent.items() if k != "label_teachers"} == {
        k: v for k, v in base.items() if k != "label_teachers"
    }
    three = stage_keys(compose_config([*TINY, "soft_labels.teachers=3"], tmp_path, tmp_path))
    assert three["label_teachers"] != base["label_teachers"]
    assert {k: three[k] for k in ("teacher", "identity", "stimuli")} == {
        k: base[k] for k in ("teacher", "identity", "stimuli")
    }


def test_whole_numbers_key_the_same_entry_as_int_or_float(tmp_path):
    base = stage_keys(compose_config(TINY, tmp_path, tmp_path))
    as_ints = compose_config(
        [*TINY, "synthesis.smoothing=2", "synthesis.weights.class=1", "synthesis.weights.bn=3"],
        tmp_path,
        tmp_path,
    )
    assert isinstance(as_ints.synthesis.smoothing, int)  # the override parser keeps the int
    assert stage_keys(as_ints) == base
    other = compose_config([*TINY, "synthesis.smoothing=2.5"], tmp_path, tmp_path)
    assert stage_keys(other)["stimuli"] != base["stimuli"]


def test_teacher_ensemble_is_trained_cached_and_evaluated(tmp_path):
    from stimuli.teacher import TeacherEnsemble, load_teacher

    out, cache = tmp_path / "out", tmp_path / "cache"
    extra = [
        "teacher.n_models=2",
        "stages=[teacher,synthesize,students,evaluate]",
        "student=logreg",
    ]
    results = run_pipeline(compose_config([*TINY, *extra], out, cache))
    members = results["teacher"]["members"]
    assert len(members) == 2 and members[0]["test"] != members[1]["test"]
    assert set(results["teacher"]["test"]) == METRICS
    cfg = compose_config([*TINY, *extra], tmp_path / "again", cache)
    job = open_job(cfg)
    teacher = job.get("teacher")  # from the cache: both members
    assert isinstance(teacher, TeacherEnsemble) and teacher.n_members == 2
    x = torch.from_numpy(job.get("dm").datasets["test"].arrays()[0][:4])
    with torch.no_grad():
        mean = torch.stack([m(x).softmax(1) for m in teacher.members]).mean(0)
        assert torch.allclose(teacher(x).softmax(1), mean, atol=1e-6)
        assert teacher.embed(x).shape[1] == 2 * teacher.members[0].embed(x).shape[1]
    saved = load_teacher(out / "teacher.pt", cfg.model, cfg.teacher, (4, 2, x.shape[2]))
    with torch.no_grad():
        assert torch.equal(saved(x), teacher(x))  # teacher.pt holds both members
    evaluation = evaluate_run(out, compose_config(TINY, tmp_path / "e", cache).data, quiet=True)
    assert set(evaluation["teacher"]) == METRICS


def test_per_person_accuracy_adds_up_to_the_jobs_test_accuracy(finished, capsys):
    from experiments import per_person

    out, first, _ = finished
    per_person.main([str(out), "--students", "cnn,logreg"])
    assert "| validation persons |" in capsys.readouterr().out
    result = per_person.per_person_accuracy(out, ["cnn"])
    assert set(result["test_acc"]) == {"teacher", "cnn/real", "cnn/stimuli", "cnn/stimuli_kd"}
    rows = result["test_persons"]
    assert sum(r["windows"] for r in rows) == first["data"]["splits"]["test"]["windows"]
    for name, acc in (
        ("teacher", first["teacher"]["test"]["acc"]),
        ("cnn/stimuli_kd", first["students"]["cnn"]["stimuli_kd"]["acc"]),
    ):
        weighted = sum(r["acc"][name] * r["windows"] for r in rows) / sum(
            r["windows"] for r in rows
        )
        assert weighted == pytest.approx(result["test_acc"][name])
        assert result["test_acc"][name] == pytest.approx(acc, abs=1e-3)
    with pytest.raises(SystemExit, match="no saved students"):
        per_person.per_person_accuracy(out, ["no_such_student"])


def test_objective_is_the_distilled_teacher_architecture_students_val_kappa(tiny_run, tmp_path):
    from stimuli.metrics import score
    from stimuli.students import Student

    objective = tiny_run.results["objective"]
    assert {k: objective[k] for k in ("student", "variant", "metric", "split")} == {
        "student": "cnn",  # conf/model/cnn is the teacher; students.cnn is its architecture
        "variant": "stimuli_kd",
        "metric": "kappa",
        "split": "val",
    }
    student = Student.load(tiny_run.out / "students" / "cnn-stimuli_kd.joblib")
    job = open_job(compose_config([*TINY, "student=fast"], tmp_path, tiny_run.cache))
    x_val, y_val, _ = job.get("dm").datasets["val"].arrays()
    assert objective["value"] == score(student.predict_proba(x_val), y_val)["kappa"]


def test_two_trial_optuna_sweep_through_joblib_maximizes_the_objective(tiny_run, tmp_path):
    """A real Optuna sweep over a synthesis setting, its two trials side by side through the
    joblib launcher (the audit's): each trial is a job (the teacher, identity model and label
    teachers load from the shared cache) whose return value Optuna records, with one offline W&B
    run per job, grouped by the sweep."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "stimuli.run",
        "-m",
        *TINY,
        "student=cnn",
        "stages=[data,teacher,synthesize,students,evaluate]",
        "report=false",
        "threads=1",
        "launcher=joblib",
        "logger=wandb",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.sampler.seed=0",
        "synthesis.lr=interval(0.01,0.1)",
        f"hydra.sweep.dir={sweep}",
        f"paths.cache_dir={tiny_run.cache}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout + proc.stderr  # what a person sees: no library noise
    for noise in ("💡 Tip", "LeafSpec", "does not have many workers", "not writable"):
        assert noise not in printed, noise
    jobs = [json.loads((sweep / str(i) / "results.json").read_text()) for i in (0, 1)]
    values = [job["objective"]["value"] for job in jobs]
    assert all(job["cache"]["teacher"] == "cached" for job in jobs)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(values))
    lrs = []
    for i in (0, 1):
        overrides = yaml.safe_load((sweep / str(i) / ".hydra" / "overrides.yaml").read_text())
        lrs += [float(o.split("=", 1)[1]) for o in overrides if o.startswith("synthesis.lr=")]
    assert all(0.01 <= lr <= 0.1 for lr in lrs) and lrs[0] != lrs[1]
    folders = [next((sweep / str(i) / "wandb").glob("offline-run-*")) for i in (0, 1)]
    runs = [read_run(folder)["run"] for folder in folders]
    assert runs[0].run_group == runs[1].run_group == "apnea_resp/sweep"
    assert [r.display_name for r in runs] == ["apnea_resp-0", "apnea_resp-1"]
    assert runs[0].run_id != runs[1].run_id
