"""`synthesis.draw` on the shared tiny run: other stimuli from the same cached teacher, and the
spread of each student over draws (experiments/draws.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import draw_difference, draws
from stimuli.pipeline import run_pipeline
from tests.conftest import TINY_RUN, compose_config


def test_a_draw_reuses_the_teacher_and_real_students_and_the_spread_shows_what_moved(
    tiny_run, tmp_path, monkeypatch
):
    sweep = tmp_path / "sweep"
    stages = "stages=[data,teacher,synthesize,students,evaluate]"
    cfg = compose_config([*TINY_RUN, "synthesis.draw=1", stages], sweep / "0", tiny_run.cache)
    drawn = run_pipeline(cfg)

    assert drawn["cache"]["teacher"] != "trained" and drawn["cache"]["stimuli"] == "synthesized"
    assert drawn["teacher"]["test"] == tiny_run.results["teacher"]["test"]
    first = np.load(tiny_run.out / "stimuli.npz")["x"]
    assert not np.allclose(np.load(sweep / "0" / "stimuli.npz")["x"], first)

    monkeypatch.setattr(draws, "OUT", tmp_path / "draws.json")
    draws.main([str(sweep), "--with", str(tiny_run.out / "results.json")])
    pooled = json.loads((tmp_path / "draws.json").read_text())["students"]
    assert set(pooled) == set(tiny_run.results["students"])
    for student, variants in pooled.items():
        assert variants["real"]["acc"]["sd"] == 0.0, student  # shared: cached, not refitted
        assert len(variants["stimuli_kd"]["runs"]) == 2
        for variant in ("stimuli", "stimuli_kd"):
            runs = variants[variant]["runs"]
            assert runs["draw 1"] == {
                m: drawn["students"][student][variant][m] for m in ("acc", "kappa")
            }

    # The same draws on both sides of draw_difference differ by nothing; a sweep read twice
    # on one side is refused rather than counted twice.
    out, both = tmp_path / "difference.json", str(tiny_run.out / "results.json")
    draw_difference.main(
        [str(sweep), "--with", both, "--base", str(sweep), "--base-with", both, "--out", str(out)]
    )
    compared = json.loads(out.read_text())["students"]
    assert set(compared) == set(tiny_run.results["students"])
    for variants in compared.values():
        cell = variants["stimuli_kd"]
        assert cell["difference"] == 0.0 and cell["interval"][0] <= 0.0 <= cell["interval"][1]
        assert cell["standing"] != "worse"
    with pytest.raises(SystemExit, match="already read"):
        draw_difference.side_runs([sweep, sweep], [])


def _runs(accs: list[float], student: str = "knn", variant: str = "stimuli_kd") -> dict:
    return {
        f"draw {i}": {"students": {student: {variant: {"acc": a, "kappa": 0.0}}}}
        for i, a in enumerate(accs)
    }


def test_the_difference_over_draws_tells_a_loss_within_the_bar_from_a_larger_or_an_unknown_one():
    offsets = [-0.002, -0.001, 0.0, 0.001, 0.002, 0.0015, -0.0015, 0.0005]
    base = _runs([0.70 + o for o in offsets])

    kept = draw_difference.difference(_runs([0.695 + o for o in offsets]), base, bar=0.01)
    cell = kept["knn"]["stimuli_kd"]
    assert cell["difference"] == pytest.approx(-0.005)
    low, high = cell["interval"]
    assert low < -0.005 < high and low > -0.01
    assert cell["standing"] == "within" and cell["draws_needed"] is None

    lost = draw_difference.difference(_runs([0.67 + o for o in offsets]), base, bar=0.01)
    assert lost["knn"]["stimuli_kd"]["standing"] == "worse"

    # The same mean loss at ten times the spread: the interval straddles -bar.
    noisy = draw_difference.difference(
        _runs([0.695 + 10 * o for o in offsets]), _runs([0.70 + 10 * o for o in offsets]), 0.01
    )["knn"]["stimuli_kd"]
    assert noisy["standing"] == "undecided"
    assert noisy["interval"][1] - noisy["interval"][0] > high - low
    assert noisy["draws_needed"] > len(offsets)
    # A mean loss beyond the bar is never "decided" in its favour by more draws.
    beyond = draw_difference.difference(
        _runs([0.685 + 10 * o for o in offsets]), _runs([0.70 + 10 * o for o in offsets]), 0.01
    )["knn"]["stimuli_kd"]
    assert beyond["standing"] == "undecided" and beyond["draws_needed"] is None


def test_identical_cached_students_differ_by_nothing_and_a_single_draw_is_not_compared():
    real = draw_difference.difference(
        _runs([0.77] * 3, variant="real"), _runs([0.77] * 4, variant="real"), 0.01
    )
    assert real["knn"]["real"]["interval"] == [0.0, 0.0]
    assert real["knn"]["real"]["standing"] == "within"
    assert draw_difference.difference(_runs([0.7]), _runs([0.7, 0.71]), 0.01) == {}
    with pytest.raises(ValueError, match="at least 2 draws"):
        draw_difference.compare([0.7], [0.7, 0.71], 0.01)
