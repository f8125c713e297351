"""bench.profile sorts py-spy samples by stage and, inside synthesis, by activity."""

from __future__ import annotations

from pathlib import Path

from bench.profile import identity_call_line, parse_raw, summarize


def test_samples_are_sorted_by_stage_and_activity(tmp_path: Path):
    line = identity_call_line()
    synth = "run (runner.py:1);stimuli_stage (build_stages.py:2);training_step (module.py:3)"
    terms = "StimulusGenerator.compute_terms (stimuli/synthesis/module.py"
    teacher = f"{synth};{terms}:{line - 5});_forward (m.py:1)"
    identity = f"{synth};compute_terms (stimuli/synthesis/module.py:{line});_forward (m.py:1)"
    hooks = f"{teacher};hook (stimuli/synthesis/hooks.py:9)"
    backward = f"{synth};backward (torch/_tensor.py:500)"
    student = "run (r.py:1);students_stage (a.py:1);fit (stimuli/students/neural.py:5)"
    raw = tmp_path / "run.raw"
    raw.write_text(
        "\n".join(
            [
                f"{teacher} 30",
                f"{identity} 10",
                f"{hooks} 5",
                f"{backward} 40",
                f"{student};forward (stimuli/models/cnn.py:3) 15",
                "main (x.py:1);teacher_stage (b.py:1) 20",
            ]
        )
        + "\n"
    )
    out = summarize(parse_raw(raw), rate=10.0)
    assert out["sampled_seconds"] == 12.0
    assert out["stages"]["stimuli_stage"]["seconds"] == 8.5
    assert out["stages"]["teacher_stage"]["share"] == round(20 / 120, 3)
    synthesis = out["inside"]["synthesis"]
    assert synthesis["teacher_forward"]["seconds"] == 3.0
    assert synthesis["identity_forward"]["seconds"] == 1.0
    assert synthesis["bn_hooks"]["seconds"] == 0.5 and synthesis["backward"]["seconds"] == 4.0
    assert out["inside"]["students_neural"]["forward"]["seconds"] == 1.5
