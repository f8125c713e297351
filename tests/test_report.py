"""report.html and sweep_report.html from real tiny closed-resp runs; the figure functions."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
from matplotlib.figure import Figure

from stimuli.pipeline import open_job, run_pipeline
from stimuli.pipeline.assess_stages import evaluate_stage
from stimuli.pipeline.report_stage import report_inputs
from stimuli.report import (
    ReportInputs,
    canvas,
    figures,
    load_results,
    write_report,
    write_sweep_report,
)
from stimuli.report.__main__ import main as cli
from tests.conftest import REPO, TINY, compose_config

# no privacy stage: these tests give the report a privacy block of their own, or none
OWNER = [
    *TINY,
    "student=logreg",
    "threads=1",
    "stages=[data,teacher,synthesize,students,evaluate,release]",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- a minimal DOM of what the tests look at --------------------------------------------------
class Page(HTMLParser):
    """Tables (caption, header cells, body rows), images, sections and every src/href."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[SimpleNamespace] = []
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.sections: dict[str, str] = {}  # id → text
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._section: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "section":
            self._section = a.get("id", "")
            self.sections[self._section] = ""
        elif tag == "table":
            self.tables.append(SimpleNamespace(caption="", headers=[], rows=[]))
        elif tag == "tr":
            self.tables[-1].rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._caption = []
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            t = self.tables[-1]
            (t.headers if tag == "th" else t.rows[-1]).append(text)
            self._cell = None
        elif tag == "caption" and self._caption is not None:
            self.tables[-1].caption = "".join(self._caption).strip()
            self._caption = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        for buf in (self._cell, self._caption):
            if buf is not None:
                buf.append(data)
        if self._section is not None:
            self.sections[self._section] += data

    def table(self, caption: str) -> SimpleNamespace:
        found = [t for t in self.tables if t.caption.startswith(caption)]
        assert found, f"no table captioned {caption!r}: {[t.caption for t in self.tables]}"
        return found[0]

    def body(self, caption: str) -> list[list[str]]:
        return [r for r in self.table(caption).rows if r]


def parse(path: Path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def num(text: str) -> float:
    return float(text.replace("\u2212", "-"))


def assert_pngs(page: Page, n: int) -> None:
    assert len(page.images) == n, [i.get("alt") for i in page.images]
    for img in page.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        png = base64.b64decode(img["src"][len(prefix) :], validate=True)
        assert png[:8] == PNG_MAGIC and len(png) > 5000
        assert img.get("alt")


def assert_self_contained(page: Page) -> None:
    external = [u for u in page.links if not u.startswith(("#", "data:"))]
    assert not external, external
    assert not any(u.lower().startswith(("http://", "https://", "//")) for u in page.links)
    assert "script" not in page.tags and "link" not in page.tags


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A run of one student without the audit, on the shared run's cache (nothing retrained)."""
    out = tmp_path_factory.mktemp("run")
    cache = tiny_run.cache
    results = run_pipeline(compose_config(OWNER, out, cache))
    return SimpleNamespace(out=out, cache=cache, results=json.loads(json.dumps(results)))


@pytest.fixture(scope="module")
def full(tiny, tmp_path_factory) -> SimpleNamespace:
    """report.html with every optional input: the reopened run's test windows and predictions
    (students reloaded from the run folder), plus a privacy block, loss and
    training curves.
    """
    job = open_job(compose_config(OWNER, tmp_path_factory.mktemp("reopened"), tiny.cache))
    students: dict = {}
    for path in sorted((tiny.out / "students").glob("*.joblib")):
        name, variant = path.stem.split("-", 1)
        students.setdefault(name, {})[variant] = joblib.load(path)
    dm = job.get("dm")
    evaluation = evaluate_stage(job.ctx, dm, job.get("teacher"), students)  # test predictions
    inputs = report_inputs({"dm": dm, "stimuli": job.get("stimuli"), **evaluation.artifacts})
    inputs.synthesis_losses = {"class": [1.0, 0.5, 0.2], "bn": [9.0, 6.0, 4.0], "tv": [1, 1, 1]}
    inputs.training_curves = {"teacher/val_kappa": [(0, 0.4), (1, 0.7), (2, 0.8)]}
    results = dict(tiny.results)
    results["privacy"] = {
        "membership": {"auroc": 0.512, "tpr_at": {"fpr_0.01": 0.013}, "n": 400},
        "attribution": {"top1": 0.31, "chance": 0.25, "per_person": [9, 3, 12, 8]},
        "verdict": "no person stands out",
    }
    folder = tmp_path_factory.mktemp("full")
    path = write_report(folder, results, inputs)
    return SimpleNamespace(path=path, page=parse(path), results=results, inputs=inputs)


@pytest.fixture(scope="module")
def sweep(tiny, tmp_path_factory) -> SimpleNamespace:
    """A multirun layout: job 0 is the tiny run, job 1 a second real run (fewer synthesis steps,
    cached teacher), job 2 never finished.
    """
    root = tmp_path_factory.mktemp("sweep")
    shutil.copytree(tiny.out, root / "0")
    run_pipeline(compose_config([*OWNER, "synthesis.steps=4"], root / "1", tiny.cache))
    overrides = [["student=logreg"], ["student=logreg", "synthesis.steps=4"], ["seed=7"]]
    for i, o in enumerate(overrides):
        (root / str(i) / ".hydra").mkdir(parents=True, exist_ok=True)
        (root / str(i) / ".hydra" / "overrides.yaml").write_text("".join(f"- {x}\n" for x in o))
    path = write_sweep_report(root)
    return SimpleNamespace(root=root, path=path, page=parse(path), overrides=overrides)


# --- report.html -------------------------------------------------------------------------------
def test_utility_table_matches_results(full):
    students = full.results["students"]
    rows = full.page.body("students scored")
    headers = full.page.table("students scored").headers
    assert headers[:6] == ["student", "trained on", "acc", "kappa", "auroc", "f1"]
    assert headers[-2:] == ["gap acc", "gap kappa"]
    assert [(r[0], r[1]) for r in rows] == [
        (name, v) for name, block in students.items() for v in ("real", "stimuli", "stimuli_kd")
    ]
    for student, variant, *cells in rows:
        block = students[student]
        for metric, text in zip(headers[2:6], cells[:4]):
            assert num(text) == pytest.approx(block[variant][metric], abs=5e-4)
        gap = block.get("gap" + variant[len("stimuli") :]) if variant != "real" else None
        if gap:
            assert num(cells[4]) == pytest.approx(gap["acc"], abs=5e-4)
            assert num(cells[5]) == pytest.approx(gap["kappa"], abs=5e-4)
        else:
            assert cells[4:] == ["—", "—"]


def test_teacher_data_stimuli_and_timing_tables(full):
    r, page = full.results, full.page
    teacher = {row[0]: row[1:] for row in page.body("teacher metrics per split")}
    assert set(teacher) == {"train", "val", "test"}
    assert page.table("teacher metrics per split").headers == [
        "split",
        "acc",
        "kappa",
        "auroc",
        "f1",
    ]
    for split, cells in teacher.items():
        for metric, text in zip(("acc", "kappa", "auroc", "f1"), cells):
            assert num(text) == pytest.approx(r["teacher"][split][metric], abs=5e-4)
    splits = {row[0]: row for row in page.body("person-wise splits")}
    assert int(splits["test"][2]) == r["data"]["splits"]["test"]["windows"]
    cohort = dict(page.body("cohort"))
    assert int(cohort["n_windows"]) == r["data"]["n_windows"]
    assert cohort["channels"] == ", ".join(r["data"]["channels"])
    synth = dict(page.body("synthesis"))
    assert int(synth["n"]) == r["stimuli"]["n"]
    assert num(synth["teacher_agreement"]) == pytest.approx(r["stimuli"]["teacher_agreement"])
    losses = dict(page.body("final synthesis losses"))
    assert set(losses) == set(r["stimuli"]["losses"])
    identity = dict(page.body("person-ID model"))
    assert num(identity["acc"]) == pytest.approx(r["identity_model"]["acc"], abs=5e-4)
    timing = dict(page.body("wall time per stage"))
    assert set(timing) == {*r["timing"], "total"}
    assert num(timing["total"]) == pytest.approx(sum(r["timing"].values()), abs=2e-3)


def test_privacy_block_is_flattened_into_tables(full):
    page = full.page
    membership = dict(page.body("membership"))
    assert num(membership["auroc"]) == pytest.approx(0.512)
    assert num(membership["tpr_at.fpr_0.01"]) == pytest.approx(0.013)
    assert dict(page.body("attribution"))["per_person"] == "9, 3, 12, 8"
    assert dict(page.body("audit"))["verdict"] == "no person stands out"


def test_every_figure_is_an_embedded_png(full):
    # utility bars, confusion matrices, 3 stimulus figures, loss curves, training curves
    assert_pngs(full.page, 7)
    assert set(full.inputs.predictions) == {
        "teacher",
        "logreg / real",
        "logreg / stimuli",
        "logreg / stimuli_kd",
    }
    assert "not available" not in full.page.sections["stimulus-figures"]


def test_report_is_self_contained(full):
    assert_self_contained(full.page)
    nav = [u for u in full.page.links if u.startswith("#")]
    assert set(nav) == {f"#{s}" for s in full.page.sections}


def test_missing_pieces_say_not_available(tiny, tmp_path):
    page = parse(write_report(tmp_path, tiny.results))
    for sid in ("confusion", "stimulus-figures", "losses", "training", "privacy"):
        assert "not available" in page.sections[sid], sid
    assert_pngs(page, 1)  # the utility bars need results.json only
    bare = parse(write_report(tmp_path / "bare", {"experiment": "x"}))
    assert len(bare.sections) == 13
    assert "has not been audited" in bare.sections["verdict"]  # first, and says how to audit it
    assert (
        next(iter(bare.sections)) == "verdict"
        and "python -m stimuli.audit" in bare.sections["verdict"]
    )
    rest = {sid: text for sid, text in bare.sections.items() if sid != "verdict"}
    assert all("not available" in text for text in rest.values()), rest
    assert bare.images == []


def test_report_shows_the_mechanisms_verdict_first(tiny, tmp_path):
    verdict = {
        "anonymity": "not established",
        "failing": ["in_out"],
        "n_splits": 8,
        "criteria": {"in_out": {"pass": False}, "dcr": {"pass": True}},
    }
    page = parse(write_report(tmp_path, {**tiny.results, "verdict": verdict}))
    assert next(iter(page.sections)) == "verdict"
    assert (
        "Anonymity not established over 8 person splits; failing: in_out"
        in page.sections["verdict"]
    )


def test_a_figure_that_fails_becomes_a_note(tiny, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(figures, "utility_bars", broken)
    page = parse(write_report(tmp_path, tiny.results))
    assert "figure failed (RuntimeError: boom)" in page.sections["utility"]
    assert page.body("students scored")  # the table is still there


def test_report_is_replaced_atomically(tiny, tmp_path):
    first = write_report(tmp_path, tiny.results)
    inode = os.stat(first).st_ino
    again = write_report(tmp_path, tiny.results)
    assert again == first == tmp_path / "report.html"
    assert os.stat(again).st_ino != inode  # a new file moved into place, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_cli_writes_report_from_run_folder(tiny):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "stimuli.report", str(tiny.out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    path = tiny.out / "report.html"
    assert done.stdout.strip() == str(path)
    page = parse(path)
    assert_pngs(page, 4)  # utility bars + 3 stimulus figures from stimuli.npz
    assert "real windows not given: stimuli only" in page.sections["stimulus-figures"]
    assert [r[0] for r in page.body("students scored")] == ["logreg"] * 3
    assert_self_contained(page)


def test_missing_results_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=f"no results.json in {tmp_path}"):
        load_results(tmp_path)
    assert cli([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and str(tmp_path) in err
    assert not (tmp_path / "report.html").exists()
    assert cli(["--sweep", str(tmp_path)]) == 2
    assert "no job folders" in capsys.readouterr().err
    assert cli(["--sweep", str(tmp_path / "nowhere")]) == 2
    assert "sweep folder not found" in capsys.readouterr().err


# --- sweep_report.html ---------------------------------------------------------------------------
def test_sweep_lists_every_job_and_its_status(sweep):
    rows = sweep.page.body("jobs")
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert [r[1] for r in rows] == [", ".join(o) for o in sweep.overrides]
    assert [r[2] for r in rows] == ["finished", "finished", "failed / not finished"]


def test_sweep_utility_and_teacher_tables_match_each_job(sweep):
    headers = sweep.page.table("students on the test").headers
    rows = sweep.page.body("students on the test")
    assert [(r[0], r[2]) for r in rows] == [("0", "logreg"), ("1", "logreg")]
    for row in rows:
        results = json.loads((sweep.root / row[0] / "results.json").read_text())
        block = results["students"]["logreg"]
        cells = dict(zip(headers, row))
        for variant in ("real", "stimuli", "stimuli_kd"):
            for metric in ("acc", "kappa"):
                expected = block[variant][metric]
                assert num(cells[f"{variant} {metric}"]) == pytest.approx(expected, abs=5e-4)
        assert num(cells["gap_kd acc"]) == pytest.approx(block["gap_kd"]["acc"], abs=5e-4)
    teacher = sweep.page.body("teacher on the test")
    theaders = sweep.page.table("teacher on the test").headers
    for row in teacher:
        results = json.loads((sweep.root / row[0] / "results.json").read_text())
        cells = dict(zip(theaders, row))
        assert num(cells["teacher kappa"]) == pytest.approx(results["teacher"]["test"]["kappa"])
        assert int(cells["stimuli steps"]) == results["stimuli"]["steps"]
    assert [int(dict(zip(theaders, r))["stimuli steps"]) for r in teacher] == [8, 4]
    assert "not available" in sweep.page.sections["privacy"]
    assert_pngs(sweep.page, 2)  # acc and kappa bars
    assert_self_contained(sweep.page)


def test_sweep_privacy_headlines_are_flattened(sweep, tmp_path):
    root = tmp_path / "sweep"
    for job in ("0", "1"):
        shutil.copytree(sweep.root / job, root / job)
    results = json.loads((root / "1" / "results.json").read_text())
    results["privacy"] = {"membership": {"auroc": 0.55, "per_person": [1, 2]}, "ok": True}
    (root / "1" / "results.json").write_text(json.dumps(results))
    page = parse(write_sweep_report(root))
    table = page.table("privacy audit")
    assert table.headers == ["job", "overrides", "membership.auroc", "ok"]
    assert [r for r in table.rows if r] == [
        ["1", "student=logreg, synthesis.steps=4", "0.55", "yes"]
    ]


def test_cli_sweep(sweep, capsys):
    assert cli(["--sweep", str(sweep.root)]) == 0
    assert capsys.readouterr().out.strip() == str(sweep.root / "sweep_report.html")


# --- figures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def arrays() -> SimpleNamespace:
    rng = np.random.default_rng(0)
    return SimpleNamespace(
        stim=rng.normal(size=(12, 2, 64)).astype(np.float32),
        stim_y=np.repeat([0, 1], 6),
        real=rng.normal(size=(40, 2, 64)).astype(np.float32),
        real_y=rng.integers(0, 2, 40),
    )


def test_figures_have_the_expected_axes(arrays):
    a = arrays
    kw = dict(fs=4.0, channel_names=["airflow", "spo2"], label_names=["normal", "apnea"])
    students = {
        "logreg": {
            "real": {"acc": 0.9, "kappa": 0.8},
            "stimuli": {"acc": 0.6, "kappa": 0.2},
            "gap": {"acc": 0.3, "kappa": 0.6},
        },
        "cnn": {"real": {"acc": 0.9, "kappa": 0.8}, "stimuli": {"error": "one class"}},
    }
    y = a.real_y
    made = {
        "examples": (figures.stimulus_examples(a.stim, a.stim_y, a.real, a.real_y, **kw), 2 * 4),
        "examples, stimuli only": (figures.stimulus_examples(a.stim, a.stim_y, **kw), 2 * 2),
        "means": (figures.class_means(a.stim, a.stim_y, a.real, a.real_y, **kw), 2 * 2),
        "spectra": (figures.power_spectra(a.stim, a.stim_y, a.real, a.real_y, **kw), 2 * 2),
        "confusion": (figures.confusion_matrices({"a": (y, y), "b": (y, 1 - y), "c": (y, y)}), 3),
        "utility": (figures.utility_bars(students, {"acc": 0.85, "kappa": 0.7}), 2),
        "losses": (figures.loss_curves({"class": [1, 0.5], "bn": [3, 2], "tv": [0, 1]}), 3),
        "training": (figures.training_curves({"loss": [(0, 1.0), (5, 0.4)], "kappa": []}), 2),
        "sweep": (figures.sweep_bars({"0": students, "1": students}, "kappa"), 2),
    }
    for name, (fig, n_axes) in made.items():
        assert isinstance(fig, Figure), name
        assert len(fig.axes) == n_axes, name
        png = canvas.to_png(fig)
        assert png[:8] == PNG_MAGIC and len(png) > 2000, name


def test_stimulus_figures_survive_a_missing_class(arrays):
    a = arrays
    only_normal = np.zeros(len(a.stim_y), dtype=int)
    fig = figures.class_means(a.stim, only_normal, a.real, a.real_y, fs=1.0, label_names=["n", "a"])
    assert len(fig.axes) == 2 * 2
    assert canvas.to_png(fig)[:8] == PNG_MAGIC


def test_report_inputs_take_fs_and_channels_from_results():
    filled = ReportInputs().with_defaults({"data": {"fs": 4, "channels": ["rri"]}})
    assert filled.fs == 4.0 and filled.channel_names == ["rri"]
    kept = ReportInputs(fs=2.0).with_defaults({"data": {"fs": 4}})
    assert kept.fs == 2.0


def test_templates_ship_as_package_data():
    """An installed (non-editable) package only holds the templates pyproject.toml declares."""
    folder = REPO / "stimuli" / "report" / "templates"
    templates = sorted(p.relative_to(folder.parent).as_posix() for p in folder.iterdir())
    assert templates == ["templates/page.html.j2"]
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools.get("package-data", {}).get("stimuli.report", [])
    missing = [t for t in templates if not any(fnmatch(t, p) for p in patterns)]
    assert not missing, (
        f"{missing} would not be installed: add to pyproject.toml\n"
        '[tool.setuptools.package-data]\n"stimuli.report" = ["templates/*.j2"]'
    )


@pytest.fixture(scope="module")
def audit(tmp_path_factory) -> SimpleNamespace:
    """audit_report.html of a verdict pooled from made-up split scores (tests/test_privacy.py)."""
    from stimuli.privacy.verdict import verdict
    from stimuli.report.audit_page import write_audit_report
    from tests.test_privacy import RULES, fake_split

    rng = np.random.default_rng(0)
    splits = [fake_split(rng, 24, {"leaky": 3.0, "leaky_balanced": 3.0}) for _ in range(8)]
    cfg = {"rules": RULES, "n_bootstrap": 200, "ci": 0.95, "family_level": 0.99}
    judged, pooled = verdict(splits, [{"top1_acc": 0.6, "chance": 1 / 24}] * 8, cfg, seed=0)
    judged |= {"mechanism": "abc123", "experiment": "apnea_cnn", "utility": {}}
    path = write_audit_report(
        tmp_path_factory.mktemp("audit") / "audit_report.html", judged, pooled
    )
    return SimpleNamespace(path=path, page=parse(path), verdict=judged)


def test_audit_report_puts_the_verdict_first_then_each_criterion_with_its_plot(audit):
    page = audit.page
    assert list(page.sections)[:5] == ["verdict", "attribution", "in-out", "anonymeter", "dcr"]
    assert (
        f"Anonymity {audit.verdict['anonymity']} over 8 person splits" in page.sections["verdict"]
    )
    rows = page.body(
        "a criterion counts when both leaky releases fail it and the placebo passes it"
    )
    assert [r[0] for r in rows] == [
        "1. Attribution as membership",
        "2. Per-person in/out test",
        "3. Anonymeter risks",
        "4. Distance to closest record",
    ]
    assert all(r[2] == "fails" and r[4] == "passes" for r in rows)  # leaky, placebo
    assert_pngs(page, 4)  # attribution mass, attribution ROC, in/out ROC, DCR histogram
    assert_self_contained(page)


# --- in a real browser ---------------------------------------------------------------------------
CHROMIUM_HINT = (
    "headless Chromium is needed for this slow test and was not found (looked for chromium, "
    "chromium-browser, google-chrome). Install it, e.g. on Debian/Ubuntu: "
    "`sudo apt-get update && sudo apt-get install -y chromium`, then rerun `make test-full`."
)


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    exe = next(
        (
            shutil.which(n)
            for n in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(n)
        ),
        None,
    )
    if exe is None:
        pytest.fail(CHROMIUM_HINT, pytrace=False)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
    ]
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("which", ["full", "sweep", "audit"])
def test_chromium_renders_the_reports(which, request, tmp_path):
    from PIL import Image

    report = request.getfixturevalue(which)
    url = report.path.as_uri()
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", url, tmp=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 10, "the screenshot is (nearly) uniform: the page did not render"
    assert (pixels < 245).mean() > 0.02, "the screenshot is (nearly) all white"
    dom = Page(chromium("--dump-dom", url, tmp=tmp_path).stdout)
    if which == "full":
        assert [r[0] for r in dom.body("students scored")] == ["logreg"] * 3
        assert dom.body("teacher metrics per split")
        assert_pngs(dom, 7)
    elif which == "audit":
        assert next(iter(dom.sections)) == "verdict"
        assert_pngs(dom, 4)
    else:
        assert [r[2] for r in dom.body("jobs")][-1] == "failed / not finished"
        assert dom.body("students on the test")
        assert_pngs(dom, 2)
