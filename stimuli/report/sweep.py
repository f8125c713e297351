"""sweep_report.html: the jobs of a Hydra multirun folder (`0/`, `1/`, ...) side by side."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from stimuli.report import figures
from stimuli.report.blocks import (
    Block,
    Cell,
    Note,
    Section,
    Table,
    cell,
    flatten,
    fmt,
    image,
    ordered,
    write_page,
)
from stimuli.report.render import METRICS

SWEEP_NAME = "sweep_report.html"
NOT_FINISHED = "failed / not finished"


@dataclass
class Job:
    num: int
    folder: Path
    overrides: list[str]
    results: dict | None
    problem: str = ""

    @property
    def label(self) -> str:
        return ", ".join(self.overrides) if self.overrides else "(no overrides)"


def _overrides(folder: Path) -> list[str]:
    path = folder / ".hydra" / "overrides.yaml"
    try:
        loaded = yaml.safe_load(path.read_text()) if path.is_file() else None
    except yaml.YAMLError:
        return ["(unreadable overrides.yaml)"]
    return [str(o) for o in loaded] if isinstance(loaded, list) else []


def load_jobs(sweep_dir: str | Path) -> list[Job]:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder not found: {sweep_dir}")
    folders = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    if not folders:
        raise FileNotFoundError(
            f"no job folders (0/, 1/, ...) in {sweep_dir}: not a Hydra multirun folder"
        )
    jobs = []
    for folder in folders:
        job = Job(int(folder.name), folder, _overrides(folder), None)
        path = folder / "results.json"
        if path.is_file():
            try:
                job.results = json.loads(path.read_text())
            except ValueError as err:
                job.problem = f"unreadable results.json ({err})"
        else:
            job.problem = NOT_FINISHED
        jobs.append(job)
    return jobs


def jobs_table(jobs: list[Job]) -> Table:
    rows = [
        [
            cell(j.num),
            Cell(j.label),
            Cell(j.problem or "finished"),
            Cell(fmt((j.results or {}).get("experiment"))),
            cell((j.results or {}).get("seed")),
        ]
        for j in jobs
    ]
    return Table(["job", "overrides", "status", "experiment", "seed"], rows, "jobs")


def utility_table(done: list[Job]) -> Table:
    students = {j.num: j.results.get("students") or {} for j in done}
    variants = figures.variants_of(
        {f"{n}/{s}": b for n, st in students.items() for s, b in st.items()}
    )
    stim = [v for v in variants if v != "real"]
    headers = ["job", "overrides", "student"]
    headers += [f"{v} {m}" for v in variants for m in ("acc", "kappa")]
    headers += [f"gap{v[len('stimuli') :]} {m}" for v in stim for m in ("acc", "kappa")]
    rows = []
    for j in done:
        for name, block in students[j.num].items():
            row = [cell(j.num), Cell(j.label), Cell(name)]
            row += [cell((block.get(v) or {}).get(m)) for v in variants for m in ("acc", "kappa")]
            row += [
                cell((block.get("gap" + v[len("stimuli") :]) or {}).get(m))
                for v in stim
                for m in ("acc", "kappa")
            ]
            rows.append(row)
    return Table(headers, rows, "students on the test persons' real windows; gap = real - stimuli")


def teacher_table(done: list[Job]) -> Table:
    tests = {j.num: ((j.results.get("teacher") or {}).get("test") or {}) for j in done}
    metrics = ordered((m for t in tests.values() for m in t), METRICS)
    headers = ["job", "overrides", *(f"teacher {m}" for m in metrics)]
    headers += ["identity acc", "stimuli n", "stimuli steps", "stimuli agreement"]
    rows = []
    for j in done:
        r = j.results
        row = [cell(j.num), Cell(j.label), *(cell(tests[j.num].get(m)) for m in metrics)]
        row += [
            cell((r.get("identity_model") or {}).get("acc")),
            cell((r.get("stimuli") or {}).get("n")),
            cell((r.get("stimuli") or {}).get("steps")),
            cell((r.get("stimuli") or {}).get("teacher_agreement")),
        ]
        rows.append(row)
    return Table(headers, rows, "teacher on the test persons, identity model, stimuli")


def privacy_table(done: list[Job]) -> Table | None:
    """Numeric leaves of each job's privacy block (lists left out: they are per-person detail)."""
    flat = {
        j.num: {
            k: v
            for k, v in flatten(j.results["privacy"]).items()
            if isinstance(v, int | float | bool | str | None)
        }
        for j in done
        if j.results.get("privacy")
    }
    if not flat:
        return None
    keys = list(dict.fromkeys(k for f in flat.values() for k in f))
    labels = {j.num: j.label for j in done}
    rows = [[cell(n), Cell(labels[n]), *(cell(f.get(k)) for k in keys)] for n, f in flat.items()]
    return Table(["job", "overrides", *keys], rows, "privacy audit headline numbers")


def write_sweep_report(sweep_dir: str | Path) -> Path:
    """Write `sweep_dir/sweep_report.html` (atomically) and return its path."""
    sweep_dir = Path(sweep_dir)
    jobs = load_jobs(sweep_dir)
    done = [j for j in jobs if j.results is not None]
    sections = [Section("Jobs", "jobs", [jobs_table(jobs)])]
    if done:
        per_job: Mapping[str, Mapping] = {str(j.num): j.results.get("students") or {} for j in done}
        utility: list[Block] = [utility_table(done)]
        if any(per_job.values()):
            for metric in ("acc", "kappa"):
                utility.append(
                    image(
                        lambda m=metric: figures.sweep_bars(per_job, m),
                        f"{metric} per student and job: real vs stimuli",
                    )
                )
        privacy = privacy_table(done)
        sections += [
            Section("Utility: students on real vs stimuli", "utility", utility),
            Section("Teacher and stimuli", "teacher", [teacher_table(done)]),
            Section("Privacy audit", "privacy", [privacy] if privacy else [Note("not available")]),
        ]
    else:
        sections.append(Section("Results", "results", [Note("no job has finished yet")]))
    facts = [
        ("folder", sweep_dir.name),
        ("jobs", str(len(jobs))),
        ("finished", str(len(done))),
        ("failed / not finished", str(len(jobs) - len(done))),
    ]
    return write_page(sweep_dir / SWEEP_NAME, "stimuli sweep report", facts, sections)
