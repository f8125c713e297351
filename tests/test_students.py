"""Neural students: training options that real and stimulus students share (on real windows),
and the `Student` interface of a network (factory keywords, its logger, save/load; on tiny
synthetic windows)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import Logger

from stimuli.classifier import Classifier
from stimuli.models import build_model
from stimuli.students import ClassicalStudent, Student
from stimuli.students.neural import NeuralStudent
from stimuli.training import FILL_ENV


@pytest.fixture(scope="module")
def windows(full_dm) -> tuple[np.ndarray, np.ndarray]:
    """512 real training windows of the open cohort (RR intervals, 1 x 1200)."""
    x, y, _ = full_dm.datasets["train"].arrays()
    idx = np.random.default_rng(0).choice(len(x), 512, replace=False)
    return x[idx], y[idx]


def weights(student: NeuralStudent) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in student.model_.parameters()])


def test_mixup_changes_training_and_stays_deterministic(windows):
    x, y = windows
    kw = dict(steps=8, batch_size=64, seed=3)
    plain = NeuralStudent("cnn", **kw).fit(x, y)
    mixed = [NeuralStudent("cnn", mixup=0.4, **kw).fit(x, y) for _ in range(2)]
    assert torch.equal(weights(mixed[0]), weights(mixed[1]))
    assert not torch.equal(weights(plain), weights(mixed[0]))
    proba = mixed[0].predict_proba(x[:16])
    assert proba.shape == (16, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)


def test_torchs_nan_fill_of_new_tensors_is_off_and_changes_no_number(windows, monkeypatch):
    """A deterministic Trainer turns torch's NaN fill of uninitialised memory off (one pass over
    every new tensor); a kernel that read such memory would make these two networks differ."""
    x, y = windows
    kw = dict(steps=6, batch_size=64, seed=5)
    without = NeuralStudent("cnn", **kw).fit(x, y)
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    monkeypatch.setenv(FILL_ENV, "1")
    with_fill = NeuralStudent("cnn", **kw).fit(x, y)
    assert torch.utils.deterministic.fill_uninitialized_memory is True
    monkeypatch.delenv(FILL_ENV)
    NeuralStudent("cnn", **{**kw, "steps": 1}).fit(x, y)
    assert torch.utils.deterministic.fill_uninitialized_memory is False
    assert torch.equal(weights(without), weights(with_fill))
    np.testing.assert_array_equal(without.predict_proba(x), with_fill.predict_proba(x))


def test_mixup_loss_mixes_both_targets(windows):
    x, _ = windows
    torch.manual_seed(0)
    module = Classifier(build_model("cnn", 1, 2, x.shape[2]), mixup=1.0, temperature=1.0)
    xb = torch.from_numpy(x[:8])
    soft = torch.softmax(torch.randn(8, 2), 1)
    torch.manual_seed(5)
    loss = module._mixup_loss(xb, soft)
    torch.manual_seed(5)  # the same draws: lambda, then the pairing
    lam = float(torch.distributions.Beta(1.0, 1.0).sample())
    perm = torch.randperm(8)
    log_p = F.log_softmax(module(lam * xb + (1 - lam) * xb[perm]), 1)
    expected = lam * F.kl_div(log_p, soft, reduction="batchmean") + (1 - lam) * F.kl_div(
        log_p, soft[perm], reduction="batchmean"
    )
    torch.testing.assert_close(loss, expected)


def test_adversarial_inputs_stay_in_the_ball_and_raise_the_loss(windows):
    x, y = windows
    model = build_model("cnn", 1, 2, x.shape[2]).eval()
    module = Classifier(model, adv_eps=0.1)
    xt, yt = torch.from_numpy(x[:64]), torch.from_numpy(y[:64])
    torch.manual_seed(0)
    x_adv = module._adversarial(xt, yt)
    assert not x_adv.requires_grad
    assert (x_adv - xt).abs().max() <= 0.1 + 1e-6
    with torch.no_grad():
        assert module.loss(model(x_adv), yt) > module.loss(model(xt), yt)


def test_network_factory_student_matches_the_teacher_config(windows):
    from functools import partial

    from stimuli.models.cnn import CNN

    x, y = windows
    student = NeuralStudent(partial(CNN, channels=[8, 8]), steps=2, batch_size=64).fit(x, y)
    assert student.name == "CNN"
    assert [m.out_channels for m in student.model_.modules() if hasattr(m, "out_channels")] == [
        8,
        8,
    ]


# --- the Student interface of a network ------------------------------------------------------
class RecordingLogger(Logger):
    """A Lightning logger that keeps what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.metrics.append(dict(metrics))


@pytest.fixture(scope="module")
def tiny() -> tuple[np.ndarray, np.ndarray]:
    """32 windows of 1 x 60 samples; class 1 carries a slow oscillation."""
    rng = np.random.default_rng(0)
    y = np.arange(32) % 2
    t = np.arange(60) / 4.0
    x = rng.standard_normal((32, 1, 60)) + y[:, None, None] * np.sin(2 * np.pi * 0.1 * t)
    return x.astype(np.float32), y.astype(np.int64)


TINY = dict(model="mlp", steps=10, batch_size=16, max_shift=0)


def test_the_factory_keywords_reach_a_neural_student():
    logger = RecordingLogger()
    student = NeuralStudent(**TINY, fs=4.0, seed=7, progress=True, logger=logger)
    assert isinstance(student, Student)
    assert (student.seed, student.progress, student.logger) == (7, True, logger)


def test_fit_trains_with_the_constructor_logger_and_save_drops_it(tiny, tmp_path):
    x, y = tiny
    logger = RecordingLogger()
    student = NeuralStudent(**TINY, seed=1, logger=logger).fit(x, y)
    assert any("train/loss" in m for m in logger.metrics)  # step 10 is logged
    path = student.save(tmp_path / "mlp-real.joblib")
    assert sorted(os.listdir(tmp_path)) == ["mlp-real.joblib"]  # no temporary file left
    loaded = NeuralStudent.load(path)
    assert loaded is not student and loaded.logger is False
    assert student.logger is logger  # saving did not change the student itself
    np.testing.assert_array_equal(loaded.predict_proba(x), student.predict_proba(x))
    np.testing.assert_array_equal(Student.load(path).predict(x), student.predict(x))


def test_same_seed_same_network_whatever_the_logger(tiny):
    x, y = tiny
    a = NeuralStudent(**TINY, seed=2).fit(x, y)
    b = NeuralStudent(**TINY, seed=2, logger=RecordingLogger()).fit(x, y)
    assert torch.equal(weights(a), weights(b))


def test_one_class_training_set_is_a_value_error(tiny):
    x, _ = tiny
    with pytest.raises(ValueError, match="both classes"):
        NeuralStudent(**TINY).fit(x, np.zeros(len(x), dtype=np.int64))


def test_load_names_a_file_of_the_wrong_kind(tiny, tmp_path):
    import joblib

    x, y = tiny
    joblib.dump({"not": "a student"}, tmp_path / "dict.joblib")
    with pytest.raises(TypeError, match=r"dict\.joblib.*not a Student"):
        Student.load(tmp_path / "dict.joblib")
    path = ClassicalStudent("logreg", fs=4.0).fit(x, y).save(tmp_path / "logreg-real.joblib")
    assert isinstance(Student.load(path), ClassicalStudent)
    with pytest.raises(TypeError, match=r"logreg-real\.joblib.*not a NeuralStudent"):
        NeuralStudent.load(path)


def test_a_failed_save_keeps_the_old_file(tiny, tmp_path, monkeypatch):
    import stimuli.students.base as base

    x, y = tiny
    path = ClassicalStudent("logreg", fs=4.0).fit(x, y).save(tmp_path / "s.joblib")
    before = path.read_bytes()

    def broken_dump(value, filename):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(base.joblib, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        ClassicalStudent("knn", fs=4.0).fit(x, y).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["s.joblib"]


@pytest.mark.parametrize(
    "make",
    [
        lambda fs: NeuralStudent("cnn", steps=6, batch_size=64, seed=2),
        lambda fs: ClassicalStudent("random_forest", fs=fs, n_estimators=20),
        lambda fs: ClassicalStudent("knn", representation="flatten", fs=fs),
    ],
    ids=["cnn", "random_forest-features", "knn-flatten"],
)
def test_a_student_fitted_on_a_view_of_the_window_cache_is_the_one_fitted_on_its_array(
    full_dm, make
):
    """The pipeline's students read the real training windows from the memory map batch by batch
    (features and flattening chunk by chunk, 1,024 windows at a time): the same student as from
    the array, so students cached before still hold."""
    train = full_dm.datasets["train"]
    rows = np.sort(np.random.default_rng(1).choice(len(train), 2500, replace=False))
    view = train.view(rows)
    x, y = train.arrays()[0][rows], train.labels()[rows]
    from_array, from_view = make(full_dm.fs).fit(x, y), make(full_dm.fs).fit(view, y)
    probe = x[::5]
    np.testing.assert_array_equal(from_view.predict_proba(probe), from_array.predict_proba(probe))
    if isinstance(from_view, NeuralStudent):
        assert torch.equal(weights(from_view), weights(from_array))
    else:  # a scikit-learn student also predicts on a view, chunk by chunk
        np.testing.assert_array_equal(from_view.predict_proba(view), from_array.predict_proba(x))
