"""The one student loop: factories from `conf/student`, `fit_students`, `score_students`."""

from __future__ import annotations

import logging
import os
from functools import partial

import numpy as np
import pytest
from omegaconf import OmegaConf

from stimuli.metrics import METRIC_NAMES, score
from stimuli.students import (
    ClassicalStudent,
    NeuralStudent,
    Student,
    fit_students,
    score_students,
    student_factories,
)


@pytest.fixture(scope="module")
def tiny() -> tuple[np.ndarray, np.ndarray]:
    """48 windows of 1 x 60 samples at 4 Hz; class 1 carries a slow oscillation."""
    rng = np.random.default_rng(0)
    y = np.arange(48) % 2
    t = np.arange(60) / 4.0
    x = rng.standard_normal((48, 1, 60)) + 2 * y[:, None, None] * np.sin(2 * np.pi * 0.1 * t)
    return x.astype(np.float32), y.astype(np.int64)


class Fixed(Student):
    """A student whose probabilities are given."""

    def __init__(self, probs) -> None:
        self.probs = np.asarray(probs, dtype=np.float64)

    def fit(self, x, y, soft=None) -> Fixed:
        return self

    def predict_proba(self, x) -> np.ndarray:
        return self.probs


# --- factories ------------------------------------------------------------------------------
def test_every_student_config_is_a_factory_of_students(make_config):
    cfg = make_config(["student=all"])
    factories = student_factories(cfg.students)
    assert list(factories) == list(cfg.students) and len(factories) == 11
    for name, factory in factories.items():
        student = factory(fs=4.0, seed=3, progress=False, logger=False)
        assert isinstance(student, Student), name
        assert student.seed == 3
        if isinstance(student, ClassicalStudent):
            assert student.fs == 4.0 and student.estimator == name
            assert not {"progress", "logger"} & set(student.estimator_params)
        else:
            assert isinstance(student, NeuralStudent) and student.model_name == name
            assert student.logger is False and student.progress is False


def test_no_students_configured():
    assert student_factories(None) == {}
    assert student_factories(OmegaConf.create({})) == {}


def test_a_student_config_must_be_partial():
    cfg = OmegaConf.create(
        {"logreg": {"_target_": "stimuli.students.classical.ClassicalStudent", "estimator": "x"}}
    )
    with pytest.raises(TypeError, match=r"students\.logreg.*_partial_"):
        student_factories(cfg)


# --- fit_students ---------------------------------------------------------------------------
def test_fit_students_calls_each_factory_the_same_way_and_keeps_errors(tiny, tmp_path, caplog):
    x, y = tiny
    calls: list[dict] = []

    def logreg(**kwargs) -> ClassicalStudent:
        calls.append(kwargs)
        return ClassicalStudent("logreg", **kwargs)

    factories = {
        "logreg": logreg,
        "mlp": partial(NeuralStudent, "mlp", steps=2, batch_size=16, max_shift=0),
    }
    one_class = np.zeros_like(y)
    soft = np.stack([1 - y, y], 1) * 0.8 + 0.1
    variants = {"real": (x, y, None), "one": (x, one_class, None), "stimuli_kd": (x, y, soft)}
    asked: list[str] = []

    def logger_for(name: str) -> bool:
        asked.append(name)
        return False

    with caplog.at_level(logging.INFO, logger="stimuli.students.fit"):
        students = fit_students(
            factories,
            variants,
            fs=4.0,
            seed=5,
            logger_for=logger_for,
            save_dir=tmp_path / "students",
        )
    assert list(students) == ["logreg", "mlp"]
    assert [list(block) for block in students.values()] == [["real", "one", "stimuli_kd"]] * 2
    for name in factories:
        assert isinstance(students[name]["real"], Student)
        assert isinstance(students[name]["stimuli_kd"], Student)
        assert isinstance(students[name]["one"], str) and "both classes" in students[name]["one"]
        assert f"student {name}/one could not be trained" in caplog.text
        assert f"student {name}/real fitted in" in caplog.text
    assert asked == [f"student-{n}-{v}" for n in factories for v in variants]
    assert calls == [{"fs": 4.0, "seed": 5, "progress": False, "logger": False}] * 3
    assert sorted(os.listdir(tmp_path / "students")) == [
        "logreg-real.joblib",
        "logreg-stimuli_kd.joblib",
        "mlp-real.joblib",
        "mlp-stimuli_kd.joblib",
    ]
    # a fitted student is exactly the one built and fitted directly, and what was saved
    direct = ClassicalStudent("logreg", fs=4.0, seed=5).fit(x, y, soft=soft)
    saved = Student.load(tmp_path / "students" / "logreg-stimuli_kd.joblib")
    expected = direct.predict_proba(x)
    np.testing.assert_array_equal(students["logreg"]["stimuli_kd"].predict_proba(x), expected)
    np.testing.assert_array_equal(saved.predict_proba(x), expected)


def test_fit_students_without_save_dir_writes_nothing(tiny, tmp_path, monkeypatch):
    x, y = tiny
    monkeypatch.chdir(tmp_path)
    students = fit_students(
        {"knn": partial(ClassicalStudent, "knn")}, {"real": (x, y, None)}, fs=4.0, seed=0
    )
    assert isinstance(students["knn"]["real"], ClassicalStudent)
    assert os.listdir(tmp_path) == []


# --- score_students -------------------------------------------------------------------------
Y = np.array([0, 0, 1, 1])
PERFECT = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]]  # acc 1, kappa 1
ONE_WRONG = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.1, 0.9]]  # acc 0.75, kappa 0.5
ALL_APNEA = [[0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9]]  # acc 0.5, kappa 0


def test_score_students_table_gaps_and_predictions():
    x = np.zeros((4, 1, 8), dtype=np.float32)
    students = {
        "a": {"real": Fixed(PERFECT), "stimuli": Fixed(ONE_WRONG), "stimuli_kd": Fixed(ALL_APNEA)},
        "b": {"real": "a student needs both classes", "stimuli": Fixed(ONE_WRONG)},
        "c": {"stimuli": Fixed(PERFECT)},
    }
    table, predictions = score_students(students, x, Y)
    a = table["a"]
    assert list(a) == ["real", "stimuli", "stimuli_kd", "gap", "gap_kd"]
    assert set(a["real"]) == set(METRIC_NAMES)
    assert (a["real"]["acc"], a["real"]["kappa"]) == (1.0, 1.0)
    assert (a["stimuli"]["acc"], a["stimuli"]["kappa"]) == (0.75, 0.5)
    assert a["stimuli_kd"]["acc"] == 0.5 and a["stimuli_kd"]["kappa"] == pytest.approx(0.0)
    assert a["gap"] == {"acc": 0.25, "kappa": 0.5}
    assert a["gap_kd"] == {"acc": 0.5, "kappa": pytest.approx(1.0)}
    assert a["stimuli"] == score(np.array(ONE_WRONG), Y)
    # no gap without a scored `real`
    assert table["b"] == {
        "real": {"error": "a student needs both classes"},
        "stimuli": score(np.array(ONE_WRONG), Y),
    }
    assert list(table["c"]) == ["stimuli"]
    assert list(predictions) == [
        "a / real",
        "a / stimuli",
        "a / stimuli_kd",
        "b / stimuli",
        "c / stimuli",
    ]
    y_true, predicted = predictions["a / stimuli"]
    np.testing.assert_array_equal(y_true, Y)
    np.testing.assert_array_equal(predicted, [0, 1, 1, 1])


def test_a_gap_rounds_to_four_digits():
    y = np.array([0, 1, 1, 0, 1, 0, 1])
    right = np.eye(2)[y]
    wrong_once = right.copy()
    wrong_once[0] = [0.0, 1.0]
    table, _ = score_students(
        {"s": {"real": Fixed(right), "stimuli": Fixed(wrong_once)}}, np.zeros((7, 1, 8)), y
    )
    assert table["s"]["gap"]["acc"] == round(1.0 - round(6 / 7, 4), 4) == 0.1429
