"""The shared DataModule: cache, person split, normalization and summary for any cohort reader."""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from joblib import Parallel, delayed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from stimuli.data.attacker_nights import owner_windows, withheld_nights
from stimuli.data.cache import CachedWindows, WindowWriter, cache_key, cached_windows
from stimuli.data.datasets import WindowDataset
from stimuli.data.recording import CohortError, Recording
from stimuli.data.splits import SPLITS, split_by_person
from stimuli.data.summary import cohort_summary
from stimuli.data.windows import WindowSet, cut_windows, normalize_recording

log = logging.getLogger(__name__)
NORMALIZATIONS = ("record", "global", "none")


class CohortDataModule(pl.LightningDataModule):
    """Windows of a sleep cohort, split by person.

    Subclasses say which files make up the cohort and how to read one recording; this class cuts
    windows, caches them, splits people into train/val/test and serves normalized tensors.
    """

    label_names = ("normal", "apnea")
    read_ahead = 8  # records read at a time per reading process (`num_workers`)

    def __init__(
        self,
        root: str | Path,
        records: Sequence[str] | None = None,
        fs: float = 4.0,
        context_before_s: float = 0.0,
        context_after_s: float = 0.0,
        normalize: str = "record",
        split: dict | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        progress: bool = True,
        attacker_nights: bool = False,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"data.normalize={normalize!r}; choose one of {NORMALIZATIONS}")
        self.root = Path(root).expanduser()
        self.records = list(records) if records else None
        self.fs = float(fs)
        self.context_before_s = float(context_before_s)
        self.context_after_s = float(context_after_s)
        self.normalize = normalize
        self.split_cfg = dict(split or {})
        self.split_cfg.setdefault("seed", seed)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else self.root / ".stimuli-cache"
        self.progress = progress
        self.attacker_nights = bool(attacker_nights)
        self.cache: CachedWindows | None = None
        self.built_cache = False
        self.datasets: dict[str, WindowDataset] = {}

    # --- what a cohort must say -------------------------------------------------------------
    @abstractmethod
    def record_names(self) -> list[str]:
        """All records of the cohort (before any `records` subset)."""

    @abstractmethod
    def source_files(self, names: Sequence[str]) -> list[Path]:
        """The input files these records are read from (they key the cache)."""

    @abstractmethod
    def persons(self, names: Sequence[str]) -> dict[str, str]:
        """Record → person id."""

    @abstractmethod
    def read_record(self, name: str, person: str) -> Recording: ...

    def reader_config(self) -> dict:
        """Everything besides the input files that changes the cached windows."""
        return {}

    # --- shared behaviour ---------------------------------------------------------------------
    def check_root(self) -> None:
        if not self.root.is_dir():
            raise CohortError(
                f"{self.root}: data folder not found. Point data.root (or STIMULI_DATA) at a local "
                "copy of the cohort, or set data.download=true where the cohort can be downloaded."
            )

    def selected_records(self) -> list[str]:
        self.check_root()
        available = self.record_names()
        if not available:
            raise CohortError(
                f"{self.root}: no records found (looked for {self.record_hint()}). Check data.root."
            )
        if self.records is None:
            return available
        missing = sorted(set(self.records) - set(available))
        if missing:
            raise CohortError(
                f"{self.root}: records {missing} from data.records are not in the folder "
                f"(it has {', '.join(available[:10])}{' …' if len(available) > 10 else ''})."
            )
        return sorted(set(self.records))

    def record_hint(self) -> str:
        return "recordings"

    def prepare_data(self) -> None:
        self.load_cache()

    def _record_windows(self, name: str, person: str) -> tuple[WindowSet, dict, list[str]]:
        """One record read and cut into windows, with its summary row and channel names."""
        rec = self.read_record(name, person)
        before, after = (round(c * self.fs) for c in (self.context_before_s, self.context_after_s))
        signal = normalize_recording(rec.signal) if self.normalize == "record" else None
        w = cut_windows(rec, before, after, signal=signal)
        row = {
            "record": rec.name,
            "person": rec.person,
            "labelled": len(rec.labels),
            "windows": len(w.y),
            "apnea": int(w.y.sum()),
            **{f"dropped_{k}": getattr(w, f"dropped_{k}") for k in ("edge", "invalid", "flat")},
        }
        return w, row, rec.channels

    def _iter_windows(
        self, names: Sequence[str], persons: dict[str, str]
    ) -> Iterator[tuple[WindowSet, dict, list[str]]]:
        """`_record_windows` of each record, in order: with `num_workers > 1` in that many
        processes, `read_ahead * num_workers` at a time (at most so many are held in memory)."""
        jobs = max(1, int(self.num_workers))
        task, step = delayed(self._record_windows), self.read_ahead * jobs
        bar = tqdm(
            total=len(names),
            desc=f"reading {self.root.name}",
            unit="record",
            disable=not self.progress,
        )
        with bar, Parallel(n_jobs=jobs, return_as="generator") as parallel:
            for chunk in (names[i : i + step] for i in range(0, len(names), step)):
                for name, result in zip(chunk, parallel(task(n, persons[n]) for n in chunk)):
                    bar.set_postfix_str(name)
                    bar.update()
                    yield result

    def _build(self, names: list[str], persons: dict[str, str], writer: WindowWriter) -> dict:
        """Append every record's windows to the cache, record by record; return the meta."""
        rows, channels, n_times = [], None, None
        for i, (w, row, rec_channels) in enumerate(self._iter_windows(names, persons)):
            channels = rec_channels if channels is None else channels
            writer.append(w.x, w.y, np.full(len(w.y), i, dtype=np.int64), w.segment_index)
            rows.append(row)
            n_times = w.x.shape[2]
        return {"channels": channels, "fs": self.fs, "n_times": n_times, "records": rows}

    def load_cache(self) -> CachedWindows:
        if self.cache is not None:
            return self.cache
        names = self.selected_records()
        persons = self.persons(names)
        config = {
            "class": type(self).__name__,
            "records": names,
            "persons": persons,
            "fs": self.fs,
            "context": [self.context_before_s, self.context_after_s],
            "record_norm": self.normalize == "record",
            **self.reader_config(),
        }
        key = cache_key(self.source_files(names), config)
        self.cache, self.built_cache = cached_windows(
            self.cache_dir, key, lambda writer: self._build(names, persons, writer)
        )
        return self.cache

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cache = self.load_cache()
        meta = cache.meta
        record_person = np.array([r["person"] for r in meta["records"]])
        window_person = record_person[cache.record_index]
        if len(cache.y) == 0:
            edge = sum(r.get("dropped_edge", 0) for r in meta["records"])
            raise CohortError(
                f"{self.root}: the cohort yields no windows ({edge} dropped at record edges: a "
                "window longer than every record? shorten data.window_s or data.context_*_s)"
            )
        y = np.asarray(cache.y)
        self.withheld_records = self.attacker_records(meta["records"])
        owner = owner_windows(
            meta["records"], np.asarray(cache.record_index), self.withheld_records
        )
        try:
            self.split_persons = split_by_person(window_person[owner], y[owner], **self.split_cfg)
        except ValueError as err:  # too few persons, or unknown persons named in data.split
            raise CohortError(
                f"{self.root}: cannot split the cohort's persons into train/val/test: {err}. Use "
                "records of at least 3 persons (data.records), or set data.split.test_persons / "
                "val_persons to persons of the cohort."
            ) from err
        self.person_ids = sorted(set(record_person.tolist()))
        person_index = np.array([self.person_ids.index(p) for p in record_person], dtype=np.int64)
        self.window_person = person_index[cache.record_index]
        indices = {
            s: np.flatnonzero(owner & np.isin(window_person, self.split_persons[s])) for s in SPLITS
        }
        for s, idx in indices.items():
            if len(idx) == 0:
                raise CohortError(
                    f"{self.root}: the {s} split has no windows (persons {self.split_persons[s]}). "
                    "Use more records, or change data.split fractions / persons."
                )
        mean = std = None
        if self.normalize == "global":
            x_train = np.asarray(cache.x[indices["train"]])
            mean = x_train.mean(axis=(0, 2))
            std = np.where((s := x_train.std(axis=(0, 2))) > 0, s, 1.0)
        self.norm_stats = None if mean is None else {"mean": mean.tolist(), "std": std.tolist()}
        if self.attacker_nights:
            indices["attacker"] = np.flatnonzero(~owner)
        self.datasets = {
            s: WindowDataset(cache.x, cache.y, self.window_person, idx, mean, std)
            for s, idx in indices.items()
        }

    def attacker_records(self, records: Sequence[dict]) -> list[str]:
        """With `attacker_nights`: the nights withheld from the owner for the attacker."""
        return withheld_nights(records, self.root) if self.attacker_nights else []

    def all_arrays(self, norm_stats: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every window of the selected records (no split) and its label.

        With `normalize=global`, pass the statistics of the run being evaluated (`norm_stats`).
        """
        cache = self.load_cache()
        x = np.asarray(cache.x, dtype=np.float32)
        if self.normalize == "global":
            if norm_stats is None:
                raise ValueError("normalize=global needs the training statistics of the run")
            mean = np.asarray(norm_stats["mean"], dtype=np.float32)[None, :, None]
            std = np.asarray(norm_stats["std"], dtype=np.float32)[None, :, None]
            x = (x - mean) / std
        return x, np.asarray(cache.y)

    # --- shapes and loaders -------------------------------------------------------------------
    @property
    def n_chans(self) -> int:
        return len(self.load_cache().meta["channels"])

    @property
    def n_times(self) -> int:
        return int(self.load_cache().meta["n_times"])

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    @property
    def channels(self) -> list[str]:
        return list(self.load_cache().meta["channels"])

    def train_person_index(self) -> dict[int, int]:
        """Global person index → 0…P-1 over the training persons (for person-ID models)."""
        train = [self.person_ids.index(p) for p in self.split_persons["train"]]
        return {g: i for i, g in enumerate(train)}

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # --- the data owner's summary --------------------------------------------------------------
    def summary(self) -> dict:
        """Records, persons, windows, labels and splits of the cohort (`stimuli.data.summary`)."""
        self.setup()
        return cohort_summary(self)
