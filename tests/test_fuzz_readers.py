"""Fuzzed cohort readers: a mutated real file reads, or fails with a CohortError that names it.

Every property starts from the real files in shared/data (closed-resp EDF + NSRR XML, closed-rri
EDF+, Apnea-ECG WFDB headers and annotations), copies them into a temporary folder and mutates
their bytes: truncation, overwritten header fields, non-ASCII and non-UTF-8 bytes, wrong record
counts, sample counts and sampling rates, TALs with odd numbers and texts. The reader must return a
well-formed result or raise `CohortError` naming the file; any other exception, or a hang, fails.

The examples are few and derandomized, so `make test` stays fast and repeatable. For a deeper,
random run: `STIMULI_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_readers.py`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stimuli.data.annotations import Event, normalize_kind, read_nsrr_xml
from stimuli.data.edf_reader import read_edf_recording
from stimuli.data.recording import CohortError, Recording
from stimuli.data.wfdb_reader import minute_labels, rr_series, waveform
from stimuli.paths import data_dir

DATA = Path(data_dir())
RESP, RRI, APNEA = DATA / "closed-resp", DATA / "closed-rri", DATA / "apnea-ecg"

# the data_root fixture fails (never skips) with a clear message when the data is missing
pytestmark = pytest.mark.usefixtures("data_root")

_DEEP = int(os.environ.get("STIMULI_FUZZ_EXAMPLES", "0"))
HANG_S = 20.0  # one example running longer than this is a hang


def fuzz(n: int) -> settings:
    """`n` derandomized examples (or `STIMULI_FUZZ_EXAMPLES` random ones), 5 s per example."""
    return settings(
        max_examples=_DEEP or n,
        derandomize=not _DEEP,
        database=None,
        deadline=5000,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@contextlib.contextmanager
def no_hang(seconds: float = HANG_S) -> Iterator[None]:
    """Fail an example that runs past `seconds` (SIGALRM; only on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def fire(signum, frame):
        raise TimeoutError(f"reader still running after {seconds:g} s (hang)")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def read_or_cohort_error(read: Callable[[], object], *files: Path) -> object | None:
    """`read()`'s result, or None when it raised a CohortError naming one of `files`.

    Any other exception propagates (and fails the property).
    """
    with no_hang(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipped-event and mne warnings are allowed
        try:
            return read()
        except CohortError as err:
            msg = str(err)
            assert any(str(f) in msg for f in files), f"message names none of {files}: {msg}"
            return None


@contextlib.contextmanager
def example_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh folder for one example (tmp_path is shared by all examples of a test)."""
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- mutations ----------------------------------------------------------------------------------

NASTY = [
    b"-1", b"0", b"1e308", b"1e400", b"nan", b"NaN", b"inf", b"-inf", b"99999999", b"-0.5",
    b"\x00", b"\xff\xfe", b"\xe9", "é".encode(), "\u2028".encode(), b"\x14", b"\x15", b"+",
    b"<", b"&", b"]]>", b"\r\n",
]  # fmt: skip


@st.composite
def mutated(draw, src: bytes, region: int | None = None) -> bytes:
    """`src` with a few overwritten, inserted or deleted bytes (within its first `region`
    bytes when given), then possibly truncated at an arbitrary offset."""
    b = bytearray(src)
    for _ in range(draw(st.integers(0, 4))):
        hi = max(min(region or len(b), len(b)) - 1, 0)
        i = draw(st.integers(0, hi))
        op = draw(st.sampled_from(["set", "insert", "delete", "nasty"]))
        if op == "set" and b:
            b[i] = draw(st.integers(0, 255))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del b[i : i + draw(st.integers(1, 16))]
        else:
            v = draw(st.sampled_from(NASTY))
            b[i : i + (len(v) if draw(st.booleans()) else 0)] = v
    if draw(st.booleans()):
        b = b[: draw(st.integers(0, len(b)))]
    return bytes(b)


# a header field's new text: a number that breaks something, or arbitrary (non-ASCII) bytes
FIELD_VALUES = st.one_of(
    st.sampled_from([*NASTY, b"", b"1", b"2", b"4", b"40", b"256", b"768", b"1e-9", b"1,5"]),
    st.integers(-(10**7), 10**8).map(lambda v: str(v).encode()),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: repr(v).encode()),
    st.binary(max_size=16),
    st.text(max_size=10).map(lambda s: s.encode("utf-8", "replace")),
)


# --- NSRR XML -----------------------------------------------------------------------------------


def _check_events(events: object) -> None:
    assert isinstance(events, list)
    for e in events:
        assert isinstance(e, Event) and isinstance(e.kind, str)
        assert math.isfinite(e.onset_s) and math.isfinite(e.duration_s) and e.duration_s >= 0


@fuzz(80)
@given(data=st.data(), name=st.sampled_from(["c02-nsrr.xml", "b01-nsrr.xml"]))
def test_nsrr_xml_mutated_bytes(tmp_path, data, name):
    src = (RESP / name).read_bytes()
    with example_dir(tmp_path) as d:
        path = d / name
        path.write_bytes(data.draw(mutated(src)))
        events = read_or_cohort_error(lambda: read_nsrr_xml(path), path)
        if events is not None:
            _check_events(events)


NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from(["", " ", "1e400", "-1e400", "0x10", "1_0", "1,5", "NaN", "-0", "١٢"]),
    st.text(max_size=8),
)
CONCEPT = st.one_of(
    st.sampled_from(["Apnea|Apnea", "Hypopnea|Hypopnea", "Recording Start Time", "", "  "]),
    st.text(max_size=30),  # unknown names, any characters (some not allowed in XML)
)
ENCODINGS = st.sampled_from(
    [None, "UTF-8", "ISO-8859-1", "UTF-16", "ascii", "no-such-codec", "shift_jis", "UTF-7"]
)


@fuzz(80)
@given(
    events=st.lists(st.tuples(CONCEPT, NUMBER_TEXT, NUMBER_TEXT), max_size=6),
    encoding=ENCODINGS,
    root=st.sampled_from(["PSGAnnotation", "ScoredEvents", "Other"]),
)
def test_nsrr_xml_generated_events(tmp_path, events, encoding, root):
    body = "".join(
        f"<ScoredEvent><EventType>Respiratory|Respiratory</EventType>"
        f"<EventConcept>{escape(c)}</EventConcept><Start>{escape(s)}</Start>"
        f"<Duration>{escape(d)}</Duration></ScoredEvent>"
        for c, s, d in events
    )
    inner = f"<ScoredEvents>{body}</ScoredEvents>" if root != "ScoredEvents" else body
    text = f"<{root}>{inner}</{root}>"
    if encoding is not None:
        text = f"<?xml version='1.0' encoding='{encoding}'?>\n" + text
    try:
        raw = text.encode(encoding or "utf-8", "replace")
    except LookupError:  # an unknown codec: declared, but the bytes are UTF-8
        raw = text.encode("utf-8")
    with example_dir(tmp_path) as d:
        path = d / "n1-nsrr.xml"
        path.write_bytes(raw)
        got = read_or_cohort_error(lambda: read_nsrr_xml(path), path)
    if got is None:
        return
    _check_events(got)
    if encoding not in (None, "UTF-8", "UTF-16"):
        return  # characters the codec lacks were replaced
    # what was read is what was written
    assert len(got) == len(events)
    for e, (c, s, dur) in zip(got, events):
        assert e.kind == normalize_kind(c.strip())
        assert e.onset_s == float(s) and e.duration_s == float(dur)


# --- EDF / EDF+ ---------------------------------------------------------------------------------

KINDS = ["obstructive apnea", "central apnea", "mixed apnea", "hypopnea", "apnea"]
EDF_BASES = {
    # name: (folder, channel map, fs, window/stride s)
    "c01": (RESP, {"airflow": ["Airflow"], "spo2": ["SpO2"]}, 1.0, 60.0),
    "slp67x": (RRI, {"rri": ["RRI"]}, 4.0, 30.0),
}


def _copy_base(name: str, d: Path, edf_bytes: bytes | None = None) -> Path:
    folder = EDF_BASES[name][0]
    edf = d / f"{name}.edf"
    edf.write_bytes((folder / f"{name}.edf").read_bytes() if edf_bytes is None else edf_bytes)
    if (folder / f"{name}-nsrr.xml").is_file():
        shutil.copy(folder / f"{name}-nsrr.xml", d / f"{name}-nsrr.xml")
    return edf


def _read_edf(edf: Path) -> Recording | None:
    _, channels, fs, win = EDF_BASES[edf.stem]
    rec = read_or_cohort_error(
        lambda: read_edf_recording(
            edf, channels=channels, fs=fs, window_s=win, stride_s=win, event_kinds=KINDS,
            min_event_s=10.0, person=edf.stem,
        ),
        edf,
        edf.with_name(f"{edf.stem}-nsrr.xml"),
    )  # fmt: skip
    if rec is not None:
        assert isinstance(rec, Recording)
        assert rec.signal.dtype == np.float32 and rec.signal.shape[0] == len(channels)
        assert rec.segments.shape == (len(rec.labels), 2)
        if len(rec.segments):
            assert rec.segments.min() >= 0 and rec.segments.max() <= rec.n_samples
        assert set(np.unique(rec.labels).tolist()) <= {0, 1}
    return rec


def _edf_fields(src: bytes) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(offset, width) of every fixed header field, and of the technical ones: header size,
    record count and duration, signal count, physical/digital ranges, samples per record."""
    fields = [(0, 8), (8, 80), (88, 80), (168, 8), (176, 8), (184, 8), (192, 44), (236, 8),
              (244, 8), (252, 4)]  # fmt: skip
    technical = [(184, 8), (236, 8), (244, 8), (252, 4)]
    n_sig, off = int(src[252:256]), 256
    # label, transducer, units, phys min/max, dig min/max, prefilter, samples/record, reserved
    for k, width in enumerate((16, 80, 8, 8, 8, 8, 8, 80, 8, 32)):
        these = [(off + i * width, width) for i in range(n_sig)]
        fields += these
        technical += these if k in (3, 4, 5, 6, 8) else []
        off += n_sig * width
    return fields, technical


@fuzz(40)
@given(name=st.sampled_from(list(EDF_BASES)), data=st.data())
def test_edf_truncated_anywhere(tmp_path, name, data):
    src = (EDF_BASES[name][0] / f"{name}.edf").read_bytes()
    cut = data.draw(
        st.one_of(st.integers(0, 2000), st.integers(0, len(src) - 1)), label="keep bytes"
    )
    with example_dir(tmp_path) as d:
        edf = _copy_base(name, d, src[:cut])
        # the header declares more data than is left: always an error, never fewer samples
        assert _read_edf(edf) is None


@fuzz(80)
@given(name=st.sampled_from(list(EDF_BASES)), data=st.data())
def test_edf_header_fields(tmp_path, name, data):
    """Record counts, record duration, samples per record, header size, labels, patient and
    date fields replaced by odd numbers or non-ASCII bytes; sometimes cut as well."""
    src = bytearray((EDF_BASES[name][0] / f"{name}.edf").read_bytes())
    fields, technical = _edf_fields(bytes(src))
    for _ in range(data.draw(st.integers(1, 3), label="n fields")):
        off, width = data.draw(st.sampled_from(technical if data.draw(st.booleans()) else fields))
        value = data.draw(FIELD_VALUES, label=f"field @{off}")
        src[off : off + width] = (value + b" " * width)[:width]
    if data.draw(st.integers(0, 4)) == 0:
        src = src[: data.draw(st.integers(0, len(src)))]
    with example_dir(tmp_path) as d:
        _read_edf(_copy_base(name, d, bytes(src)))


@fuzz(30)
@given(
    name=st.sampled_from(list(EDF_BASES)),
    patient=st.text(max_size=80),
    label=st.binary(min_size=16, max_size=16),
    codec=st.sampled_from(["utf-8", "latin-1", "utf-16"]),
)
def test_edf_non_ascii_identity_fields(tmp_path, name, patient, label, codec):
    """Non-ASCII patient/recording fields are read; a non-ASCII label at worst misses a channel."""
    src = bytearray((EDF_BASES[name][0] / f"{name}.edf").read_bytes())
    text = (patient.encode(codec, "replace") + b" " * 80)[:80]
    src[8:88] = text
    src[88:168] = text[::-1]
    src[256:272] = label  # the first signal's label
    with example_dir(tmp_path) as d:
        rec = _read_edf(_copy_base(name, d, bytes(src)))
    if rec is not None:  # identifying header fields never reach the Recording
        assert set(rec.info) == {"duration_s", "annotation_source", "n_events"}


@fuzz(30)
@given(data=st.data())
def test_edf_with_generated_sidecar(tmp_path, data):
    """NSRR events with negative, huge or past-the-end times still give valid window labels."""
    times = st.one_of(
        st.floats(-1e308, 1e308, allow_nan=False), st.sampled_from([0.0, 60.0, 28982.0, 1e12])
    )
    events = data.draw(
        st.lists(st.tuples(st.sampled_from(["Apnea|Apnea", "Hypopnea", "?"]), times, times))
    )
    body = "".join(
        f"<ScoredEvent><EventConcept>{c}</EventConcept><Start>{s!r}</Start>"
        f"<Duration>{abs(dur)!r}</Duration></ScoredEvent>"
        for c, s, dur in events
    )
    with example_dir(tmp_path) as d:
        edf = _copy_base("c01", d)
        (d / "c01-nsrr.xml").write_text(
            f"<PSGAnnotation><ScoredEvents>{body}</ScoredEvents></PSGAnnotation>"
        )
        rec = _read_edf(edf)
    assert rec is not None and rec.info["annotation_source"] == "nsrr_xml"


# EDF+ TALs: closed-rri's slp67x holds 4 RRI samples + 40 annotation samples (80 bytes) per record
TAL_SLOT, TAL_BYTES, N_RECORDS = 768 + 8, 80, 4620
TAL_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: f"{v:+}"),
    st.integers(-(10**30), 10**30).map(lambda v: f"{v:+d}"),
    st.sampled_from(["+0", "-0", "+", "+1.", "+.5", "++1", "+1e5", "+" + "9" * 60, "30"]),
)
TAL_TEXT = st.one_of(
    st.sampled_from(["Obstructive apnea", "Hypopnea", "Sleep stage W", "x@@RRI", ""]),
    st.text(max_size=20),
)


@st.composite
def tals(draw) -> bytes:
    """One record's annotation bytes: TALs `+onset[\\x15duration](\\x14text)*\\x14\\x00`."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        tal = draw(TAL_NUMBER).encode()
        if draw(st.booleans()):
            tal += b"\x15" + draw(TAL_NUMBER).lstrip("+").encode()
        for _ in range(draw(st.integers(0, 2))):
            text = draw(TAL_TEXT)
            codec = draw(st.sampled_from(["utf-8", "utf-8", "latin-1"]))
            tal += b"\x14" + text.encode(codec, "replace")
        out += tal + b"\x14" + (b"\x00" if draw(st.integers(0, 5)) else b"")
    return (out + b"\x00" * TAL_BYTES)[:TAL_BYTES]


@fuzz(40)
@given(
    slots=st.lists(
        st.tuples(st.one_of(st.just(0), st.integers(0, N_RECORDS - 1)), tals()),
        min_size=1,
        max_size=4,
    ),
)
def test_edf_plus_generated_tals(tmp_path, slots):
    """Odd onsets/durations (signs, NaN, inf, huge), unknown and non-UTF-8 texts, missing
    terminators, in the annotation channel (record 0 holds the time-keeping TAL)."""
    src = bytearray((RRI / "slp67x.edf").read_bytes())
    for record, tal in slots:
        off = TAL_SLOT + record * 88
        src[off : off + TAL_BYTES] = tal
    with example_dir(tmp_path) as d:
        _read_edf(_copy_base("slp67x", d, bytes(src)))


@fuzz(30)
@given(data=st.data())
def test_edf_plus_mutated_annotation_bytes(tmp_path, data):
    src = (RRI / "slp67x.edf").read_bytes()
    head = TAL_SLOT + 20 * 88  # the first 20 records: stage and event TALs
    with example_dir(tmp_path) as d:
        body = data.draw(mutated(src[TAL_SLOT:head]))
        body = (body + b"\x00" * (head - TAL_SLOT))[: head - TAL_SLOT]  # keep the layout
        _read_edf(_copy_base("slp67x", d, src[:TAL_SLOT] + body + src[head:]))


# --- WFDB (Apnea-ECG) ---------------------------------------------------------------------------

REC = "c10"


@functools.cache
def small_qrs() -> bytes:
    """c10's first ~2000 beats (4000 bytes of 1-word annotations) and the end-of-file word: the
    full 48 kB file takes wfdb 0.15 s to read, too slow for many examples."""
    return (APNEA / f"{REC}.qrs").read_bytes()[:4000] + b"\x00\x00"


def _wfdb_copy(d: Path, qrs: bytes | None = None) -> Path:
    for suffix in ("hea", "apn"):
        shutil.copy(APNEA / f"{REC}.{suffix}", d / f"{REC}.{suffix}")
    (d / f"{REC}.qrs").write_bytes(small_qrs() if qrs is None else qrs)
    return d


def _read_wfdb(d: Path) -> None:
    files = [d / f"{REC}.{s}" for s in ("hea", "apn", "qrs")]
    series = read_or_cohort_error(lambda: rr_series(d, REC, 4.0), *files)
    if series is not None:
        assert isinstance(series, np.ndarray) and series.dtype == np.float32
        assert series.ndim == 2 and series.shape[0] == 1
    labels = read_or_cohort_error(lambda: minute_labels(d, REC, 4.0), *files)
    if labels is not None:
        segments, y = labels
        assert segments.shape == (len(y), 2) and set(np.unique(y).tolist()) <= {0, 1}
        assert np.all(segments[:, 1] - segments[:, 0] == 240)


HEA_TOKENS = st.one_of(
    st.sampled_from(["0", "-1", "nan", "inf", "1e400", "0.0001", "1e9", "100", "2585000", "16",
                     "", "é", "1/2", "100(0)/mV", "c10.dat", "99999999999999999999"]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)  # fmt: skip


@fuzz(80)
@given(data=st.data())
def test_wfdb_header_fields(tmp_path, data):
    """`c10 1 100 2585000` / `c10.dat 16 200 12 0 7 1359 0 ECG`: wrong sample counts, sampling
    rates and signal counts, dropped or extra fields, non-ASCII text, truncation."""
    lines = (APNEA / f"{REC}.hea").read_bytes().decode().split("\r\n")
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        li = data.draw(st.integers(0, 1), label="line")
        tokens = lines[li].split(" ")
        i = data.draw(st.integers(0, len(tokens)), label="token")
        op = data.draw(st.sampled_from(["set", "set", "drop", "insert", "cut"]))
        if op == "set" and i < len(tokens):
            tokens[i] = data.draw(HEA_TOKENS)
        elif op == "drop" and i < len(tokens):
            del tokens[i]
        elif op == "insert":
            tokens.insert(i, data.draw(HEA_TOKENS))
        else:
            tokens = tokens[:i]
        lines[li] = " ".join(tokens)
    raw = "\r\n".join(lines).encode("utf-8")
    if data.draw(st.integers(0, 4)) == 0:
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    with example_dir(tmp_path) as d:
        _wfdb_copy(d)
        (d / f"{REC}.hea").write_bytes(raw)
        _read_wfdb(d)


@fuzz(50)
@given(data=st.data(), which=st.sampled_from(["apn", "qrs"]))
def test_wfdb_annotations_mutated(tmp_path, data, which):
    src = (APNEA / f"{REC}.apn").read_bytes() if which == "apn" else small_qrs()
    with example_dir(tmp_path) as d:
        _wfdb_copy(d)
        (d / f"{REC}.{which}").write_bytes(data.draw(mutated(src)))
        _read_wfdb(d)


@fuzz(15)
@given(data=st.data())
def test_wfdb_real_qrs_truncated_anywhere(tmp_path, data):
    src = (APNEA / f"{REC}.qrs").read_bytes()
    with example_dir(tmp_path) as d:
        _wfdb_copy(d, src[: data.draw(st.integers(0, len(src)))])
        _read_wfdb(d)


@fuzz(40)
@given(data=st.data(), which=st.sampled_from(["hea", "hea", "dat"]))
def test_wfdb_waveform_mutated(tmp_path, data, which):
    """The 1 Hz respiration record a01r_1hz: its header or its signal file mutated."""
    rec = "a01r_1hz"
    with example_dir(tmp_path) as d:
        for suffix in ("hea", "dat"):
            src = (APNEA / "resp_1hz" / f"{rec}.{suffix}").read_bytes()
            if suffix == which:
                src = data.draw(mutated(src, region=600 if which == "dat" else None))
            (d / f"{rec}.{suffix}").write_bytes(src)
        got = read_or_cohort_error(lambda: waveform(d, rec, 1.0), d / rec)
    if got is not None:
        signal_, names = got
        assert signal_.dtype == np.float32 and signal_.shape[0] == len(names)
