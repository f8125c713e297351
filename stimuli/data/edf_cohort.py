"""Closed cohorts: a folder of EDF/EDF+ nights with NSRR XML sidecars or embedded annotations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from stimuli.data.cohort import CohortDataModule
from stimuli.data.edf_reader import person_from_name, read_edf_recording
from stimuli.data.recording import Recording

DEFAULT_EVENT_KINDS = ("obstructive apnea", "central apnea", "mixed apnea", "hypopnea", "apnea")


class EDFCohortDataModule(CohortDataModule):
    """Fixed windows (`window_s`, `stride_s`) over each EDF night, labelled by event coverage.

    The person of a night comes from its file name (`person_regex`), never from EDF header fields.
    """

    def __init__(
        self,
        root: str | Path,
        channels: Mapping[str, Sequence[str]],
        fs: float = 1.0,
        window_s: float = 60.0,
        stride_s: float = 60.0,
        event_kinds: Sequence[str] = DEFAULT_EVENT_KINDS,
        min_event_s: float = 10.0,
        person_regex: str | None = None,
        sidecar_pattern: str = "{name}-nsrr.xml",
        pattern: str = "*.edf",
        **kwargs,
    ) -> None:
        super().__init__(root, fs=fs, **kwargs)
        self.channel_map = {
            k: list(v) if not isinstance(v, str) else [v] for k, v in channels.items()
        }
        self.window_s = float(window_s)
        self.stride_s = float(stride_s)
        self.event_kinds = list(event_kinds)
        self.min_event_s = float(min_event_s)
        self.person_regex = person_regex
        self.sidecar_pattern = sidecar_pattern
        self.pattern = pattern

    def record_hint(self) -> str:
        return f"files matching {self.pattern!r}"

    def record_names(self) -> list[str]:
        found = {p.stem for p in self.root.glob(self.pattern)}
        found |= {p.stem for p in self.root.glob(self.pattern.upper())}
        return sorted(found)

    def _edf(self, name: str) -> Path:
        path = self.root / f"{name}.edf"
        return path if path.is_file() else self.root / f"{name}.EDF"

    def source_files(self, names: Sequence[str]) -> list[Path]:
        files = []
        for n in names:
            files.append(self._edf(n))
            sidecar = self.root / self.sidecar_pattern.format(name=n)
            if sidecar.is_file():
                files.append(sidecar)
        return files

    def persons(self, names: Sequence[str]) -> dict[str, str]:
        return {n: person_from_name(n, self.person_regex) for n in names}

    def read_record(self, name: str, person: str) -> Recording:
        return read_edf_recording(
            self._edf(name),
            channels=self.channel_map,
            fs=self.fs,
            window_s=self.window_s,
            stride_s=self.stride_s,
            event_kinds=self.event_kinds,
            min_event_s=self.min_event_s,
            person=person,
            sidecar_pattern=self.sidecar_pattern,
        )

    def reader_config(self) -> dict:
        return {
            "channels": self.channel_map,
            "window": [self.window_s, self.stride_s],
            "events": [sorted(self.event_kinds), self.min_event_s],
            "sidecar": self.sidecar_pattern,
        }
