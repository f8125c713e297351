"""Scored events of a night: reading them (NSRR XML, EDF+) and turning them into window labels."""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stimuli.data.recording import CohortError

_XML_FIX = (
    "re-export the annotations from the scoring software, or remove the sidecar to use the EDF+ "
    "annotations instead"
)


@dataclass(frozen=True)
class Event:
    """One scored event; `kind` is the normalized concept name (see `normalize_kind`)."""

    onset_s: float
    duration_s: float
    kind: str

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s


def normalize_kind(name: str) -> str:
    """`"Apnea|Apnea"` -> `"apnea"`, `" Obstructive Apnea "` -> `"obstructive apnea"`."""
    return " ".join(str(name).split("|", 1)[0].split()).lower()


def _number(node: ET.Element, tag: str, path: Path, index: int) -> float:
    child = node.find(tag)
    text = None if child is None else (child.text or "").strip()
    if not text:
        raise CohortError(f"{path}: ScoredEvent #{index} has no <{tag}>; {_XML_FIX}.")
    try:
        value = float(text)
    except ValueError:
        raise CohortError(
            f"{path}: ScoredEvent #{index} has a non-numeric <{tag}> {text!r} (seconds expected); "
            f"{_XML_FIX}."
        ) from None
    if not math.isfinite(value):
        raise CohortError(f"{path}: ScoredEvent #{index} has <{tag}> {text!r}; {_XML_FIX}.")
    return value


def read_nsrr_xml(path: str | Path) -> list[Event]:
    """Events of an NSRR `PSGAnnotation` file (`ScoredEvents/ScoredEvent`, Start/Duration in s).

    Every event is returned, including bookkeeping ones such as `Recording Start Time`;
    `label_windows` keeps only the kinds it is asked for.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise CohortError(f"{path}: malformed XML ({err}); {_XML_FIX}.") from None
    except (LookupError, ValueError) as err:
        # expat knows no such codec (LookupError) or no multi-byte one such as Shift-JIS
        raise CohortError(
            f"{path}: unreadable XML encoding declaration ({err}); save it as UTF-8, or {_XML_FIX}."
        ) from None
    except OSError as err:
        raise CohortError(f"{path}: cannot read the annotation file ({err}).") from None
    scored = root if root.tag == "ScoredEvents" else root.find("ScoredEvents")
    if scored is None:
        raise CohortError(
            f"{path}: no <ScoredEvents> element under <{root.tag}> (not an NSRR PSGAnnotation "
            f"file?); {_XML_FIX}."
        )
    events = []
    for i, node in enumerate(scored.findall("ScoredEvent")):
        concept = node.find("EventConcept")
        name = "" if concept is None else (concept.text or "").strip()
        if not name:
            raise CohortError(f"{path}: ScoredEvent #{i} has no <EventConcept>; {_XML_FIX}.")
        onset = _number(node, "Start", path, i)
        duration = _number(node, "Duration", path, i)
        if duration < 0:
            raise CohortError(f"{path}: ScoredEvent #{i} has a negative Duration; {_XML_FIX}.")
        events.append(Event(onset, duration, normalize_kind(name)))
    return events


def events_from_mne(annotations) -> list[Event]:
    """Events of an `mne.Annotations` (EDF+ embedded), onsets relative to the first sample."""
    return [
        Event(float(onset), float(duration), normalize_kind(desc))
        for onset, duration, desc in zip(
            annotations.onset, annotations.duration, annotations.description
        )
    ]


def merge_intervals(events: Iterable[Event], kinds: Sequence[str]) -> np.ndarray:
    """Union of the events of `kinds` as sorted, disjoint `[start, stop)` rows, float64 (n, 2)."""
    wanted = {normalize_kind(k) for k in kinds}
    iv = np.array(
        [(e.onset_s, e.end_s) for e in events if e.kind in wanted and e.duration_s > 0],
        dtype=np.float64,
    ).reshape(-1, 2)
    if len(iv) == 0:
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    # a new group starts where the onset lies beyond every earlier stop
    reach = np.maximum.accumulate(iv[:, 1])
    new = np.ones(len(iv), dtype=bool)
    new[1:] = iv[1:, 0] > reach[:-1]
    stops = np.maximum.reduceat(iv[:, 1], np.flatnonzero(new))
    return np.column_stack([iv[new, 0], stops])


def label_windows(
    events: Sequence[Event],
    starts_s: np.ndarray,
    window_s: float,
    kinds: Sequence[str],
    min_cover_s: float,
) -> np.ndarray:
    """1 where the union of `kinds` events covers >= `min_cover_s` s of `[start, start+window)`."""
    starts = np.asarray(starts_s, dtype=np.float64).reshape(-1)
    iv = merge_intervals(events, kinds)
    if len(iv) == 0 or len(starts) == 0:
        return np.zeros(len(starts), dtype=np.int64)
    lengths = iv[:, 1] - iv[:, 0]
    before = np.concatenate([[0.0], np.cumsum(lengths)])  # covered time before interval i

    def covered_until(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(iv[:, 0], t, side="right") - 1  # last interval starting at or before t
        inside = np.clip(t - iv[np.maximum(i, 0), 0], 0.0, lengths[np.maximum(i, 0)])
        return np.where(i >= 0, before[np.maximum(i, 0)] + inside, 0.0)

    cover = covered_until(starts + float(window_s)) - covered_until(starts)
    return (cover >= float(min_cover_s) - 1e-9).astype(np.int64)


def clip_events(events: Sequence[Event], duration_s: float, source: str) -> list[Event]:
    """Clip events to `[0, duration_s)`; drop those wholly outside, and warn when any changed."""
    kept, clipped, dropped = [], 0, 0
    for e in events:
        start, stop = max(e.onset_s, 0.0), min(e.end_s, float(duration_s))
        if e.onset_s >= duration_s or e.end_s < 0 or (e.duration_s > 0 and stop <= start):
            dropped += 1
            continue
        if start != e.onset_s or stop != e.end_s:
            clipped += 1
            kept.append(Event(start, max(stop - start, 0.0), e.kind))
        else:
            kept.append(e)
    if clipped or dropped:
        warnings.warn(
            f"{source}: {clipped + dropped} of {len(events)} events extend past the recording "
            f"(0-{float(duration_s):g} s): {clipped} clipped to its end, {dropped} starting after "
            "it dropped; check that the annotations belong to this recording",
            UserWarning,
            stacklevel=2,
        )
    return kept
