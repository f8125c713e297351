"""Neural students on real windows: training options that real and stimulus students share."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stimuli.classifier import Classifier
from stimuli.models import build_model
from stimuli.students.neural import NeuralStudent


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
