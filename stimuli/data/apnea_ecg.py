"""The Apnea-ECG cohort as a DataModule (the WFDB readers are in `stimuli.data.wfdb_reader`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stimuli.data.cohort import CohortDataModule
from stimuli.data.physionet import download_database
from stimuli.data.recording import CohortError, Recording
from stimuli.data.wfdb_reader import (
    discover_records,
    persons_for,
    read_apnea_ecg_record,
)


class ApneaECGDataModule(CohortDataModule):
    """PhysioNet Apnea-ECG: one window per labelled minute, with context minutes on each side.

    Modalities: `rri` (RR intervals from the `.qrs` beats, no waveform needed), `ecg` (the `.dat`
    ECG) and `resp` (respiration records named by `resp_record`, e.g. `{name}r` for PhysioNet's
    100 Hz files or `resp_1hz/{name}r_1hz` for the 1 Hz copies).
    """

    def __init__(
        self,
        root: str | Path,
        modality: str = "rri",
        fs: float = 4.0,
        context_s: float = 120.0,
        record_regex: str = r"[a-z]\d\d",
        resp_record: str = "{name}r",
        channels: Sequence[str] | None = None,
        rri: dict | None = None,
        download: bool = False,
        waveforms: bool = False,
        physionet: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            root, fs=fs, context_before_s=context_s, context_after_s=context_s, **kwargs
        )
        if modality not in ("rri", "ecg", "resp"):
            raise ValueError(f"data.modality={modality!r}; choose rri, ecg or resp")
        self.modality = modality
        self.record_regex = record_regex
        self.resp_record = resp_record
        self.channel_names = list(channels) if channels else None
        self.rri = dict(rri or {})
        self.download = download
        self.waveforms = waveforms
        self.physionet = {
            "db": "apnea-ecg",
            "version": "1.0.0",
            "base_url": None,
            **(physionet or {}),
        }

    def record_hint(self) -> str:
        return f"NAME.hea + NAME.apn with NAME matching {self.record_regex!r}"

    def record_names(self) -> list[str]:
        names = discover_records(self.root, self.record_regex)
        if self.modality == "resp" and self.records is None:
            names = [
                n for n in names if (self.root / f"{self.resp_record.format(name=n)}.hea").is_file()
            ]
        return names

    def _signal_files(self, name: str) -> list[Path]:
        if self.modality == "rri":
            return [self.root / f"{name}.qrs", self.root / f"{name}.hea"]
        record = name if self.modality == "ecg" else self.resp_record.format(name=name)
        return [self.root / f"{record}.hea", self.root / f"{record}.dat"]

    def source_files(self, names: Sequence[str]) -> list[Path]:
        files = [f for n in names for f in [self.root / f"{n}.apn", *self._signal_files(n)]]
        files += sorted(self.root.glob("additional-information*.txt"))
        missing = [f for f in files if not f.is_file()]
        if missing:
            hint = {
                "rri": "modality 'rri' needs each record's .qrs beat annotations",
                "ecg": "modality 'ecg' needs the .dat waveforms "
                "(data.download=true data.waveforms=true)",
                "resp": f"modality 'resp' needs the respiration records {self.resp_record!r}",
            }[self.modality]
            raise CohortError(
                f"{missing[0]}: file missing ({len(missing)} missing in all): {hint}. "
                "Add the files, or drop those records via data.records."
            )
        return files

    def persons(self, names: Sequence[str]) -> dict[str, str]:
        return persons_for(self.root, names)

    def read_record(self, name: str, person: str) -> Recording:
        return read_apnea_ecg_record(
            self.root,
            name,
            person,
            modality=self.modality,
            fs=self.fs,
            rri=self.rri,
            resp_record=self.resp_record,
            channels=self.channel_names,
        )

    def reader_config(self) -> dict:
        return {
            "modality": self.modality,
            "rri": self.rri,
            "resp_record": self.resp_record,
            "channels": self.channel_names,
        }

    def prepare_data(self) -> None:
        if self.download and not discover_records(self.root, self.record_regex):
            suffixes = [".hea", ".apn", ".qrs"] + ([".dat"] if self.waveforms else [])
            cfg = self.physionet
            download_database(
                self.root,
                cfg["db"],
                cfg["version"],
                suffixes,
                extra_files=["additional-information.txt"],
                records=self.records,
                base_url=cfg["base_url"],
            )
        super().prepare_data()
