"""`synthesis.draw` on the shared tiny run: other stimuli from the same cached teacher, and the
spread of each student over draws (experiments/draws.py)."""

from __future__ import annotations

import json

import numpy as np

from experiments import draws
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
