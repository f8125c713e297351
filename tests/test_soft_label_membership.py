"""The soft-label membership probe (experiments/soft_label_membership.py): its pooling tells a
student that is surer of its training persons from one that is not, and its placebo students
learn seeded noise."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import open_dict

from experiments.soft_label_membership import placebo_students, pooled, true_label_logp
from tests.conftest import TINY, compose_config


def test_true_label_logp_is_the_mean_log_probability_of_each_persons_labels():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    out = true_label_logp(probs, np.array([0, 1, 0]), np.array([4, 4, 7]))
    assert out == pytest.approx({4: np.log([0.9, 0.8]).mean(), 7: np.log(0.5)})


def splits_with(member_gain: float, n_splits: int = 8, n_persons: int = 24) -> list[dict]:
    """Person splits of a cohort whose persons differ (an easy person scores high in or out);
    a member's score is raised by `member_gain`."""
    rng = np.random.default_rng(0)
    easiness = rng.normal(0, 2, n_persons)
    splits = []
    for _ in range(n_splits):
        member = np.zeros(n_persons, dtype=bool)
        member[rng.choice(n_persons, 14, replace=False)] = True
        score = easiness + member_gain * member + rng.normal(0, 0.1, n_persons)
        splits.append(
            {
                "persons": list(range(n_persons)),
                "is_member": member.tolist(),
                "scores": {"real": {"cnn": score.tolist()}, "stimuli_kd": {"cnn": score.tolist()}},
            }
        )
    return splits


def test_a_student_surer_of_its_members_is_found_and_one_that_is_not_is_not():
    remembers = pooled(splits_with(member_gain=1.0), n_bootstrap=200)["stimuli_kd"]["cnn"]
    assert remembers["auc"] > 0.95 and not remembers["covers_chance"]
    forgets = pooled(splits_with(member_gain=0.0), n_bootstrap=200)["stimuli_kd"]["cnn"]
    assert 0.3 < forgets["auc"] < 0.7 and forgets["covers_chance"]


def test_the_placebo_students_learn_seeded_white_noise_with_random_soft_labels(tmp_path):
    cfg = compose_config([*TINY, "student=logreg"], tmp_path / "run", tmp_path / "cache")
    shape = (4, 60)
    first = placebo_students(cfg, ["logreg"], 64, shape, fs=1.0)
    again = placebo_students(cfg, ["logreg"], 64, shape, fs=1.0)
    with open_dict(cfg):
        cfg.data.split.seed = 3  # another split: other noise and labels
    other = placebo_students(cfg, ["logreg"], 64, shape, fs=1.0)
    probe = np.random.default_rng(1).standard_normal((16, *shape)).astype(np.float32)
    probs = first["logreg/placebo"].predict_proba(probe)
    assert probs.shape == (16, 2) and np.allclose(probs.sum(1), 1)
    np.testing.assert_array_equal(probs, again["logreg/placebo"].predict_proba(probe))
    assert not np.allclose(probs, other["logreg/placebo"].predict_proba(probe))
