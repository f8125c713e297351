"""Scored events: NSRR XML parsing, EDF+ conversion, window labels and clipping."""

from __future__ import annotations

import warnings
from pathlib import Path

import mne
import numpy as np
import pytest

from stimuli.data.annotations import (
    Event,
    clip_events,
    events_from_mne,
    label_windows,
    merge_intervals,
    normalize_kind,
    read_nsrr_xml,
)
from stimuli.data.recording import CohortError
from stimuli.paths import data_dir

RESP = Path(data_dir()) / "closed-resp"

XML_HEAD = "<?xml version='1.0' encoding='UTF-8'?>\n<PSGAnnotation><ScoredEvents>\n"
XML_TAIL = "</ScoredEvents></PSGAnnotation>\n"


def _xml(tmp_path: Path, body: str, name: str = "n1-nsrr.xml") -> Path:
    p = tmp_path / name
    p.write_text(XML_HEAD + body + XML_TAIL)
    return p


def _ev(concept: str, start: str, duration: str) -> str:
    return (
        f"<ScoredEvent><EventType>Respiratory|Respiratory</EventType>"
        f"<EventConcept>{concept}</EventConcept><Start>{start}</Start>"
        f"<Duration>{duration}</Duration></ScoredEvent>\n"
    )


def test_normalize_kind():
    assert normalize_kind("Apnea|Apnea") == "apnea"
    assert normalize_kind("  Obstructive  Apnea ") == "obstructive apnea"
    assert normalize_kind("Hypopnea|Hypopnea") == "hypopnea"
    assert normalize_kind("Sleep stage W") == "sleep stage w"


# --- NSRR XML -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("data_root")  # fails, never skips, without the data
def test_read_nsrr_xml_real_sidecar():
    events = read_nsrr_xml(RESP / "a01-nsrr.xml")
    assert len(events) == 471
    assert events[0] == Event(0.0, 29522.0, "recording start time")
    apnea = [e for e in events if e.kind == "apnea"]
    assert len(apnea) == 470  # README: 470 apnea minutes in a01
    assert all(e.duration_s == 60.0 for e in apnea)
    assert apnea[0].onset_s == 780.0


def test_read_nsrr_xml_synthetic(tmp_path):
    p = _xml(
        tmp_path,
        _ev("Obstructive Apnea|Obstructive Apnea", "12.5", "20")
        + _ev("SpO2 desaturation|SpO2 desaturation", "40", "8.25"),
    )
    assert read_nsrr_xml(p) == [
        Event(12.5, 20.0, "obstructive apnea"),
        Event(40.0, 8.25, "spo2 desaturation"),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (XML_HEAD + _ev("Apnea|Apnea", "1", "10"), "malformed XML"),  # unclosed elements
        ("<PSGAnnotation><Other/></PSGAnnotation>", "no <ScoredEvents>"),
        (XML_HEAD + _ev("Apnea|Apnea", "abc", "10") + XML_TAIL, "non-numeric <Start>"),
        (XML_HEAD + _ev("Apnea|Apnea", "1", "ten") + XML_TAIL, "non-numeric <Duration>"),
        (XML_HEAD + _ev("Apnea|Apnea", "1", "") + XML_TAIL, "has no <Duration>"),
        (XML_HEAD + _ev("", "1", "10") + XML_TAIL, "has no <EventConcept>"),
        (XML_HEAD + _ev("Apnea|Apnea", "1", "-5") + XML_TAIL, "negative Duration"),
    ],
)
def test_read_nsrr_xml_bad(tmp_path, text, problem):
    p = tmp_path / "bad-nsrr.xml"
    p.write_text(text)
    with pytest.raises(CohortError) as err:
        read_nsrr_xml(p)
    msg = str(err.value)
    assert str(p) in msg and problem in msg
    assert "re-export" in msg


def test_events_from_mne():
    ann = mne.Annotations([0.004, 30.0], [30.0, 30.0], ["Obstructive apnea", "Sleep stage 2"])
    assert events_from_mne(ann) == [
        Event(0.004, 30.0, "obstructive apnea"),
        Event(30.0, 30.0, "sleep stage 2"),
    ]


# --- window labels --------------------------------------------------------------------------------


def test_merge_intervals():
    ev = [
        Event(10, 5, "a"),
        Event(0, 4, "a"),
        Event(2, 3, "a"),
        Event(15, 1, "a"),
        Event(3, 100, "b"),
    ]
    np.testing.assert_array_equal(merge_intervals(ev, ["A"]), [[0, 5], [10, 16]])
    assert merge_intervals(ev, ["c"]).shape == (0, 2)


def test_overlap_not_double_counted():
    # two overlapping 6-s events cover 8 s of the window, not 12
    ev = [Event(0.0, 6.0, "apnea"), Event(2.0, 6.0, "apnea")]
    starts = np.array([0.0])
    assert label_windows(ev, starts, 60, ["apnea"], 10)[0] == 0
    assert label_windows(ev, starts, 60, ["apnea"], 8)[0] == 1
    assert label_windows(ev, starts, 60, ["apnea"], 8.01)[0] == 0
    # duplicated events (same epoch scored twice) count once
    dup = [Event(30.0, 30.0, "hypopnea"), Event(30.0, 30.0, "obstructive apnea")]
    kinds = ["hypopnea", "obstructive apnea"]
    assert label_windows(dup, np.array([0.0, 30.0]), 30, kinds, 30.0).tolist() == [0, 1]
    assert label_windows(dup, np.array([0.0, 30.0]), 30, kinds, 30.01).tolist() == [0, 0]


def test_threshold_boundary_and_straddling():
    starts = np.array([0.0, 60.0, 120.0])
    # [50, 70) puts exactly 10 s into windows 0 and 1
    ev = [Event(50.0, 20.0, "apnea")]
    assert label_windows(ev, starts, 60, ["apnea"], 10).tolist() == [1, 1, 0]
    assert label_windows(ev, starts, 60, ["apnea"], 10.5).tolist() == [0, 0, 0]
    # 9.99 s is below a 10-s threshold
    ev = [Event(60.0, 9.99, "apnea")]
    assert label_windows(ev, starts, 60, ["apnea"], 10).tolist() == [0, 0, 0]
    # an event ending exactly at a window start covers nothing of it
    ev = [Event(0.0, 60.0, "apnea")]
    assert label_windows(ev, starts, 60, ["apnea"], 1e-6).tolist() == [1, 0, 0]


def test_kinds_filter_exact_case_insensitive():
    ev = [Event(0.0, 60.0, "apnea"), Event(60.0, 60.0, "obstructive apnea")]
    starts = np.array([0.0, 60.0])
    assert label_windows(ev, starts, 60, ["Obstructive Apnea"], 10).tolist() == [0, 1]
    assert label_windows(ev, starts, 60, ["APNEA"], 10).tolist() == [1, 0]
    assert label_windows(ev, starts, 60, ["hypopnea"], 10).tolist() == [0, 0]
    assert label_windows([], starts, 60, ["apnea"], 10).dtype == np.int64


def _brute_cover(events, kinds, start, window, step=0.01):
    t = np.arange(start, start + window, step) + step / 2
    hit = np.zeros_like(t, dtype=bool)
    for e in events:
        if e.kind in kinds:
            hit |= (t >= e.onset_s) & (t < e.end_s)
    return hit.sum() * step


def test_label_windows_matches_brute_force():
    rng = np.random.default_rng(0)
    onsets = rng.uniform(0, 600, 80).round(2)
    durs = rng.uniform(1, 40, 80).round(2)
    kinds = rng.choice(["apnea", "hypopnea", "arousal"], 80)
    ev = [Event(float(o), float(d), str(k)) for o, d, k in zip(onsets, durs, kinds)]
    starts = np.arange(0, 600, 15.0)
    for min_cover in (5.0, 20.0, 29.0):
        got = label_windows(ev, starts, 30.0, ["apnea", "hypopnea"], min_cover)
        cover = np.array([_brute_cover(ev, {"apnea", "hypopnea"}, s, 30.0) for s in starts])
        clear = np.abs(cover - min_cover) > 0.05  # skip windows within grid error of the threshold
        np.testing.assert_array_equal(got[clear], (cover >= min_cover)[clear].astype(int))


def test_label_windows_is_fast_enough():
    rng = np.random.default_rng(1)
    ev = [Event(float(o), 30.0, "apnea") for o in rng.uniform(0, 30000, 5000)]
    starts = np.arange(0, 30000, 30.0)
    labels = label_windows(ev, starts, 30.0, ["apnea"], 10.0)
    assert labels.shape == starts.shape and labels.sum() > 0


# --- clipping -------------------------------------------------------------------------------------


def test_clip_events_warns_and_clips():
    ev = [Event(10.0, 20.0, "apnea"), Event(90.0, 30.0, "apnea"), Event(120.0, 5.0, "apnea")]
    with pytest.warns(UserWarning) as rec:
        out = clip_events(ev, 100.0, "night7.edf")
    assert out == [Event(10.0, 20.0, "apnea"), Event(90.0, 10.0, "apnea")]
    msg = str(rec[0].message)
    assert "night7.edf" in msg and "2 of 3 events" in msg and "1 clipped" in msg
    assert "1 starting after it dropped" in msg


def test_clip_events_silent_when_inside():
    ev = [Event(0.0, 30.0, "apnea"), Event(70.0, 30.0, "apnea")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clip_events(ev, 100.0, "x") == ev
