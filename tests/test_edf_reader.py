"""EDF / EDF+ cohort reader against the closed-resp and closed-rri copies in shared/data."""

from __future__ import annotations

import shutil
from pathlib import Path

import mne
import numpy as np
import pytest

from stimuli.data.edf_reader import person_from_name, read_edf_recording
from stimuli.data.recording import CohortError, Recording
from stimuli.paths import data_dir

DATA = Path(data_dir())
RESP = DATA / "closed-resp"
RRI = DATA / "closed-rri"

# the data_root fixture fails (never skips) with a clear message when the data is missing
pytestmark = pytest.mark.usefixtures("data_root")

KINDS = ["obstructive apnea", "central apnea", "mixed apnea", "hypopnea", "apnea"]
RESP_CHANNELS = {
    "airflow": ["Flow", "Nasal Pressure", "Airflow", "Resp N"],
    "thor": ["Thorax", "THOR", "Resp C"],
    "abdo": ["Abdomen", "abdo", "Resp A"],
    "spo2": ["SaO2", "SpO2"],
}

# README: apnea minutes per night
RESP_APNEA = {"a01": 470, "a02": 420, "a03": 246, "a04": 453, "b01": 19, "c01": 0, "c02": 1}
# README: scored epochs / epochs holding a respiratory event
RRI_EPOCHS = {
    "slp01a": (240, 37), "slp01b": (360, 65), "slp02a": (360, 91), "slp02b": (270, 42),
    "slp03": (720, 241), "slp04": (720, 317), "slp14": (714, 182), "slp16": (694, 295),
    "slp32": (640, 118), "slp37": (698, 554), "slp41": (780, 0), "slp45": (756, 0),
    "slp48": (760, 293), "slp59": (458, 209), "slp60": (710, 341), "slp61": (720, 253),
    "slp66": (439, 229), "slp67x": (154, 73),
}  # fmt: skip


def read_resp(path, **kw):
    args = dict(channels=RESP_CHANNELS, fs=1.0, window_s=60, stride_s=60, event_kinds=KINDS,
                min_event_s=10, person=Path(path).stem)  # fmt: skip
    args.update(kw)
    return read_edf_recording(path, **args)


def read_rri(path, **kw):
    args = dict(channels={"rri": ["RR", "RRI"]}, fs=4.0, window_s=30, stride_s=30,
                event_kinds=KINDS, min_event_s=10, person=Path(path).stem)  # fmt: skip
    args.update(kw)
    return read_edf_recording(path, **args)


# --- closed-resp: EDF + NSRR XML ------------------------------------------------------------------


@pytest.fixture(scope="module")
def resp_records() -> dict[str, Recording]:
    return {name: read_resp(RESP / f"{name}.edf") for name in RESP_APNEA}


@pytest.mark.parametrize("name", list(RESP_APNEA))
def test_closed_resp_counts(resp_records, name):
    rec = resp_records[name]
    assert rec.labels.sum() == RESP_APNEA[name]
    assert rec.channels == ["airflow", "thor", "abdo", "spo2"]
    assert rec.fs == 1.0 and rec.signal.dtype == np.float32
    assert rec.signal.shape == (4, rec.n_samples)
    assert 8.0 * 3600 <= rec.n_samples < 8.85 * 3600  # README: 8.0-8.8 h (a02 is 8.83 h)
    assert len(rec.segments) == rec.n_samples // 60
    np.testing.assert_array_equal(rec.segments[:, 1] - rec.segments[:, 0], 60)
    np.testing.assert_array_equal(rec.segments[:, 0], np.arange(len(rec.segments)) * 60)
    assert rec.segments[-1, 1] <= rec.n_samples
    assert rec.info["annotation_source"] == "nsrr_xml"
    assert rec.info["n_events"] == RESP_APNEA[name]
    assert rec.person == name and rec.name == name


def test_closed_resp_no_header_identity(resp_records):
    rec = resp_records["a01"]
    text = repr(rec.info) + rec.name + rec.person
    for ident in ("A01", "Apnea-ECG", "2000", "22:00"):
        assert ident not in text
    assert set(rec.info) == {"duration_s", "annotation_source", "n_events"}


def test_closed_resp_channel_order_and_aliases():
    raw = mne.io.read_raw_edf(RESP / "c02.edf", preload=True, verbose="error")
    rec = read_resp(
        RESP / "c02.edf", channels={"spo2": ["spo2"], "flow": ["AIRFLOW"], "chest": ["thor"]}
    )
    assert rec.channels == ["spo2", "flow", "chest"]
    expected = raw.get_data(picks=["SpO2", "Airflow", "Thor"]).astype(np.float32)
    np.testing.assert_array_equal(rec.signal, expected)
    assert 90 < np.median(rec.signal[0]) <= 100  # SpO2 in %


def test_resampling_keeps_labels():
    rec = read_resp(RESP / "c02.edf", fs=2.0)
    assert rec.fs == 2.0 and rec.signal.shape[1] == 2 * 30062
    np.testing.assert_array_equal(rec.segments[:, 1] - rec.segments[:, 0], 120)
    assert rec.labels.sum() == RESP_APNEA["c02"]


# --- closed-rri: EDF+ embedded annotations --------------------------------------------------------


def test_closed_rri_counts():
    measured, lengths = {}, {}
    for name in RRI_EPOCHS:
        rec = read_rri(RRI / f"{name}.edf")
        assert rec.channels == ["rri"] and rec.signal.shape == (1, rec.n_samples)
        assert rec.info["annotation_source"] == "edf+"
        measured[name] = int(rec.labels.sum())
        lengths[name] = len(rec.labels)
        assert 0.2 < np.nanmedian(rec.signal) < 2.0  # RR intervals in seconds
    assert measured == {k: v[1] for k, v in RRI_EPOCHS.items()}
    assert sum(measured.values()) == 3340
    # windows cover the whole recording; unscored tails are simply unlabelled (0)
    assert all(lengths[k] >= v[0] for k, v in RRI_EPOCHS.items())


def test_closed_rri_resampled_to_1hz():
    rec = read_rri(RRI / "slp67x.edf", fs=1.0)
    assert rec.signal.shape == (1, 4620)
    assert rec.labels.sum() == 73


def test_sidecar_takes_precedence_over_edf_plus(tmp_path):
    edf = tmp_path / "slp67x.edf"
    shutil.copy(RRI / "slp67x.edf", edf)
    (tmp_path / "slp67x-nsrr.xml").write_text(
        "<PSGAnnotation><ScoredEvents><ScoredEvent><EventConcept>Hypopnea|Hypopnea</EventConcept>"
        "<Start>0</Start><Duration>45</Duration></ScoredEvent></ScoredEvents></PSGAnnotation>"
    )
    rec = read_rri(edf)
    assert rec.info["annotation_source"] == "nsrr_xml"
    assert rec.labels.tolist()[:3] == [1, 1, 0] and rec.labels.sum() == 2


# --- person ids -----------------------------------------------------------------------------------


def test_person_from_name():
    assert person_from_name("slp01a", r"^(slp\d+)") == "slp01"
    assert person_from_name("slp01b", r"^(slp\d+)") == "slp01"
    assert person_from_name("slp67x", r"^(slp\d+)") == "slp67"
    assert person_from_name("a01", None) == "a01"
    assert person_from_name("rec-17_night2", r"rec-\d+") == "rec-17"
    with pytest.raises(CohortError, match=r"a01.*\^\(slp"):
        person_from_name("a01", r"^(slp\d+)")


# --- bad input ------------------------------------------------------------------------------------


def test_missing_channel_lists_available():
    path = RESP / "b01.edf"
    with pytest.raises(CohortError) as err:
        read_resp(path, channels={**RESP_CHANNELS, "ecg": ["ECG", "EKG"]})
    msg = str(err.value)
    assert str(path) in msg and "'ecg'" in msg and "EKG" in msg
    for have in ("Airflow", "Thor", "Abdo", "SpO2"):
        assert have in msg
    assert "alias" in msg and "channels" in msg


@pytest.mark.parametrize("cut", [1, 5000, 200_000])
def test_truncated_edf(tmp_path, cut):
    src = RESP / "a01.edf"
    edf = tmp_path / "a01.edf"
    edf.write_bytes(src.read_bytes()[:-cut])
    shutil.copy(RESP / "a01-nsrr.xml", tmp_path / "a01-nsrr.xml")
    with pytest.raises(CohortError) as err:
        read_resp(edf)
    msg = str(err.value)
    assert str(edf) in msg and "truncated" in msg and "download it again" in msg


def test_truncated_edf_plus(tmp_path):
    edf = tmp_path / "slp01a.edf"
    edf.write_bytes((RRI / "slp01a.edf").read_bytes()[:-100])
    with pytest.raises(CohortError, match="truncated"):
        read_rri(edf)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, this is not a recording\n",
        b"0       " + b"x" * 400,
        b"PK\x03\x04" + b"\0" * 600,
    ],
)
def test_not_an_edf(tmp_path, content):
    edf = tmp_path / "night.edf"
    edf.write_bytes(content)
    with pytest.raises(CohortError) as err:
        read_resp(edf)
    msg = str(err.value)
    assert str(edf) in msg and ("not an EDF" in msg or "corrupt" in msg)
    assert "re-export" in msg


def test_missing_file(tmp_path):
    with pytest.raises(CohortError, match="not found"):
        read_resp(tmp_path / "nope.edf")


def test_malformed_xml_sidecar(tmp_path):
    edf = tmp_path / "c01.edf"
    shutil.copy(RESP / "c01.edf", edf)
    side = tmp_path / "c01-nsrr.xml"
    side.write_text("<PSGAnnotation><ScoredEvents><ScoredEvent><Start>1</Start>")
    with pytest.raises(CohortError) as err:
        read_resp(edf)
    msg = str(err.value)
    assert str(side) in msg and "malformed XML" in msg and "remove the sidecar" in msg


def test_events_past_end_are_clipped(tmp_path):
    edf = tmp_path / "c02.edf"
    shutil.copy(RESP / "c02.edf", edf)
    end = 30062.0  # c02 duration, s
    side = tmp_path / "c02-nsrr.xml"
    side.write_text(
        "<PSGAnnotation><ScoredEvents>"
        + "".join(
            f"<ScoredEvent><EventConcept>Apnea|Apnea</EventConcept><Start>{s}</Start>"
            f"<Duration>{d}</Duration></ScoredEvent>"
            for s, d in [(60, 60), (end - 50, 120), (end + 10, 60)]
        )
        + "</ScoredEvents></PSGAnnotation>"
    )
    with pytest.warns(UserWarning) as rec_w:
        rec = read_resp(edf)
    msg = str(rec_w[0].message)
    assert str(side) in msg and "2 of 3 events" in msg and "clipped" in msg
    assert rec.labels.tolist()[:3] == [0, 1, 0]
    # the last whole window [29940, 30000) holds 10 s of the clipped event
    assert rec.labels[-1] == 1 and rec.labels.sum() == 2
    assert rec.info["n_events"] == 2


def test_no_annotations_at_all(tmp_path):
    edf = tmp_path / "a03.edf"
    shutil.copy(RESP / "a03.edf", edf)
    with pytest.raises(CohortError) as err:
        read_resp(edf)
    msg = str(err.value)
    assert str(edf) in msg and "labels are missing" in msg
    assert str(tmp_path / "a03-nsrr.xml") in msg
