"""report.html for one finished run: results.json as tables, plus figures from optional arrays."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stimuli.io import read_json
from stimuli.report import figures
from stimuli.report.blocks import (
    NOT_AVAILABLE,
    Block,
    Cell,
    Note,
    Section,
    Table,
    cell,
    fmt,
    grid,
    image,
    key_values,
    ordered,
    write_page,
)
from stimuli.report.inputs import ReportInputs

log = logging.getLogger(__name__)

METRICS = ("acc", "kappa", "auroc", "f1")
REPORT_NAME = "report.html"


def load_results(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no results.json in {Path(run_dir)}: not a finished run folder "
            "(a run writes results.json when its last stage ends)"
        )
    return read_json(path)


def _missing(what: str = NOT_AVAILABLE) -> list[Block]:
    return [Note(what)]


def data_section(data: Mapping | None) -> Section:
    if not data:
        return Section("Data", "data", _missing())
    blocks: list[Block] = [key_values(data, "cohort", skip=["splits"])]
    splits = data.get("splits")
    if isinstance(splits, Mapping) and splits:
        cols = ordered((k for s in splits.values() for k in s), ["persons", "windows"])
        blocks.append(grid(splits, cols, "split", "person-wise splits"))
    return Section("Data", "data", blocks)


def teacher_section(teacher: Mapping | None) -> Section:
    if not teacher:
        return Section("Teacher", "teacher", _missing())
    splits = {k: v for k, v in teacher.items() if isinstance(v, Mapping)}
    cols = ordered((m for s in splits.values() for m in s), METRICS)
    blocks: list[Block] = [grid(splits, cols, "split", "teacher metrics per split")]
    rest = {k: v for k, v in teacher.items() if k not in splits}
    if rest:
        blocks.append(key_values(rest, "training"))
    return Section("Teacher", "teacher", blocks)


def stimuli_section(stim: Mapping | None) -> Section:
    if not stim:
        return Section("Stimuli", "stimuli", _missing())
    blocks: list[Block] = [key_values(stim, "synthesis", skip=["losses"])]
    losses = stim.get("losses")
    if isinstance(losses, Mapping) and losses:
        rows = [[Cell(str(k)), cell(v)] for k, v in losses.items()]
        blocks.append(Table(["loss term", "final value"], rows, "final synthesis losses"))
    return Section("Stimuli", "stimuli", blocks)


def utility_table(students: Mapping[str, Mapping]) -> Table:
    """One row per student and training set: its test metrics and, for stimuli sets, the gap to
    the same student trained on real windows.
    """
    variants = figures.variants_of(students)
    metrics = ordered(
        (m for b in students.values() for v in variants for m in (b.get(v) or {}) if m != "error"),
        METRICS,
    )
    rows = []
    for name, block in students.items():
        for v in variants:
            if v not in block:
                continue
            scores = block[v] or {}
            gap = block.get("gap" + v[len("stimuli") :], {}) if v.startswith("stimuli") else {}
            if "error" in scores:
                head = [Cell(name), Cell(v), Cell(f"not trained: {scores['error']}", len(metrics))]
            else:
                head = [Cell(name), Cell(v), *(cell(scores.get(m)) for m in metrics)]
            rows.append([*head, cell(gap.get("acc")), cell(gap.get("kappa"))])
    headers = ["student", "trained on", *metrics, "gap acc", "gap kappa"]
    caption = "students scored on the test persons' real windows; gap = real - stimuli"
    return Table(headers, rows, caption)


def utility_section(results: Mapping) -> Section:
    students = results.get("students")
    if not students:
        return Section("Utility: students on real vs stimuli", "utility", _missing())
    teacher = (results.get("teacher") or {}).get("test")
    bars = image(lambda: figures.utility_bars(students, teacher), "accuracy and kappa per student")
    return Section(
        "Utility: students on real vs stimuli", "utility", [utility_table(students), bars]
    )


def _stimulus_blocks(inp: ReportInputs) -> list[Block]:
    if inp.stimuli_x is None or inp.stimuli_labels is None:
        return _missing("not available (no stimuli arrays given)")
    if inp.fs is None:
        return _missing("not available (sampling rate unknown)")
    kw = dict(fs=inp.fs, channel_names=inp.channel_names, label_names=inp.label_names)
    args = (inp.stimuli_x, inp.stimuli_labels, inp.real_x, inp.real_labels)
    blocks: list[Block] = []
    if inp.real_x is None or inp.real_labels is None:
        blocks.append(Note("real windows not given: stimuli only"))
    blocks += [
        image(lambda: figures.stimulus_examples(*args, **kw), "example stimuli and real windows"),
        image(lambda: figures.class_means(*args, **kw), "mean ± sd per class"),
        image(lambda: figures.power_spectra(*args, **kw), "power spectra per class"),
    ]
    return blocks


def privacy_section(privacy: Any, inp: ReportInputs) -> Section:
    blocks: list[Block] = []
    if isinstance(privacy, Mapping) and privacy:
        scalars = {k: v for k, v in privacy.items() if not isinstance(v, Mapping)}
        if scalars:
            blocks.append(key_values(scalars, "audit"))
        blocks += [key_values(v, str(k)) for k, v in privacy.items() if isinstance(v, Mapping)]
    elif privacy:
        blocks.append(Note(fmt(privacy)))
    return Section("Privacy criteria on this split", "privacy", blocks or _missing())


def verdict_section(verdict: Mapping | None) -> Section:
    """The anonymity verdict of this run's mechanism (`python -m stimuli.audit`), or that it
    has not been audited."""
    if not verdict or verdict.get("anonymity") == "not audited":
        how = (verdict or {}).get("how", "python -m stimuli.audit")
        text = f"The mechanism of this run has not been audited. Audit it with `{how}`."
        return Section("Anonymity verdict", "verdict", [Note(text)])
    head = f"Anonymity {verdict['anonymity']} over {verdict['n_splits']} person splits"
    if verdict.get("failing"):
        head += "; failing: " + ", ".join(verdict["failing"])
    criteria = {k: v for k, v in verdict.get("criteria", {}).items()}
    return Section("Anonymity verdict", "verdict", [Note(head), key_values(criteria, "criteria")])


def timing_section(results: Mapping) -> Section:
    timing = results.get("timing") or {}
    blocks: list[Block] = []
    if timing:
        rows = [[Cell(str(k)), cell(v)] for k, v in timing.items()]
        total = sum(v for v in timing.values() if isinstance(v, int | float))
        rows.append([Cell("total"), cell(round(total, 3))])
        blocks.append(Table(["stage", "seconds"], rows, "wall time per stage"))
    if results.get("cache"):
        blocks.append(key_values(results["cache"], "cached products"))
    return Section("Timing", "timing", blocks or _missing())


def _figure_section(title: str, sid: str, given: Any, draw, alt: str) -> Section:
    return Section(title, sid, [image(draw, alt)] if given else _missing())


def write_report(
    run_dir: str | Path, results: Mapping[str, Any], arrays: ReportInputs | None = None
) -> Path:
    """Write `run_dir/report.html` (atomically) and return its path."""
    inp = (arrays or ReportInputs()).with_defaults(results)
    identity = results.get("identity_model")
    sections = [
        verdict_section(results.get("verdict")),
        data_section(results.get("data")),
        teacher_section(results.get("teacher")),
        Section(
            "Identity model",
            "identity",
            [key_values(identity, "person-ID model")] if identity else _missing(),
        ),
        stimuli_section(results.get("stimuli")),
        utility_section(results),
        _figure_section(
            "Confusion matrices",
            "confusion",
            inp.predictions,
            lambda: figures.confusion_matrices(inp.predictions, inp.label_names),
            "confusion matrices on the test windows",
        ),
        Section("Stimuli vs real windows", "stimulus-figures", _stimulus_blocks(inp)),
        _figure_section(
            "Synthesis loss curves",
            "losses",
            inp.synthesis_losses,
            lambda: figures.loss_curves(inp.synthesis_losses),
            "synthesis loss per step and term",
        ),
        _figure_section(
            "Training curves",
            "training",
            inp.training_curves,
            lambda: figures.training_curves(inp.training_curves),
            "training curves",
        ),
        privacy_section(results.get("privacy"), inp),
        Section(
            "Release",
            "release",
            [key_values(results["release"], "release bundle")]
            if results.get("release")
            else _missing(),
        ),
        timing_section(results),
    ]
    facts = [("experiment", fmt(results.get("experiment"))), ("seed", fmt(results.get("seed")))]
    t = (results.get("teacher") or {}).get("test") or {}
    if t:
        facts.append(("teacher test acc / kappa", f"{fmt(t.get('acc'))} / {fmt(t.get('kappa'))}"))
    title = f"stimuli run report: {results.get('experiment') or Path(run_dir).name}"
    return write_page(Path(run_dir) / REPORT_NAME, title, facts, sections)


def report_figures(inp: ReportInputs, results: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report's figures as `{key: Figure}` for a tracker (W&B); absent inputs are skipped."""
    inp = inp.with_defaults(results or {})
    draw: dict[str, Any] = {}
    students = (results or {}).get("students")
    if students:
        teacher = ((results or {}).get("teacher") or {}).get("test")
        draw["figures/utility"] = lambda: figures.utility_bars(students, teacher)
    if inp.predictions:
        draw["figures/confusion"] = lambda: figures.confusion_matrices(
            inp.predictions, inp.label_names
        )
    if inp.stimuli_x is not None and inp.stimuli_labels is not None and inp.fs is not None:
        kw = dict(fs=inp.fs, channel_names=inp.channel_names, label_names=inp.label_names)
        args = (inp.stimuli_x, inp.stimuli_labels, inp.real_x, inp.real_labels)
        draw["figures/stimuli_examples"] = lambda: figures.stimulus_examples(*args, **kw)
        draw["figures/stimuli_mean_sd"] = lambda: figures.class_means(*args, **kw)
        draw["figures/stimuli_spectra"] = lambda: figures.power_spectra(*args, **kw)
    out = {}
    for key, make in draw.items():
        try:
            out[key] = make()
        except Exception as err:  # a figure must never break a finished run
            log.warning("figure %s failed: %s", key, err)
    return out
