"""The soft-label membership probe (experiments/soft_label_membership.py): its pooling tells a
student that is surer of its training persons from one that is not."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.soft_label_membership import pooled, true_label_logp


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
