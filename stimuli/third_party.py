"""The third party's side: train students on a released bundle alone, score them on own data.

`python -m stimuli.run +experiment=third_party release_path=RUN/release data=closed_resp
student=cnn` (`stages=[third_party]`) needs nothing of the data owner but the bundle: each
student is fitted on the stimuli (hard labels, `stimuli`; and on the teacher's soft labels,
`stimuli_kd`, when the bundle has them and `distill=true`) and scored on every window of the
third party's cohort (`data=...`), written to `third_party.json` in the run folder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import joblib
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from stimuli.data.stimuli_bundle import StimuliDataModule
from stimuli.io import write_json
from stimuli.metrics import score

log = logging.getLogger(__name__)


def own_windows(dm, bundle: StimuliDataModule) -> tuple[np.ndarray, np.ndarray]:
    """Every window of the third party's cohort, checked against the bundle's format."""
    dm.prepare_data()
    if bundle.normalize and dm.normalize != bundle.normalize:
        raise ValueError(
            f"{dm.root}: data.normalize={dm.normalize!r}, but the bundle's stimuli are "
            f"{bundle.normalize!r}-normalized; set data.normalize={bundle.normalize}"
        )
    if not np.isclose(dm.fs, bundle.fs):
        raise ValueError(
            f"{dm.root}: windows at {dm.fs:g} Hz, but the bundle's stimuli are at "
            f"{bundle.fs:g} Hz; "
            f"set data.fs={bundle.fs:g}"
        )
    stats = None
    if dm.normalize == "global":  # the owner's statistics are not released: use one's own
        x = np.asarray(dm.load_cache().x, dtype=np.float32)
        std = x.std(axis=(0, 2))
        stats = {"mean": x.mean(axis=(0, 2)).tolist(), "std": np.where(std > 0, std, 1).tolist()}
    x, y = dm.all_arrays(stats)
    expected = (bundle.n_chans, bundle.n_times)
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{dm.root}: windows of shape (channels, samples) {tuple(x.shape[1:])} do not match "
            f"the bundle's stimuli {expected} (channels {bundle.channels}, {bundle.fs:g} Hz, "
            f"{bundle.n_times / bundle.fs:g} s); use the same channels, sampling rate and window"
        )
    if dm.channels != bundle.channels:
        log.warning("channel names differ: own %s, bundle %s", dm.channels, bundle.channels)
    return np.array(x, dtype=np.float32), np.array(y, dtype=np.int64)  # writable copies


def run_third_party(cfg: DictConfig) -> dict:
    if cfg.get("quiet", False):
        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    release_path = cfg.get("release_path")
    if not release_path:
        raise ValueError("release_path=... must name a released bundle (a run's release/ folder)")
    seed = int(cfg.seed)
    pl.seed_everything(seed, workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config_resolved.yaml", resolve=True)

    bundle = StimuliDataModule(release_path, seed=seed)
    dm = instantiate(cfg.data, progress=not cfg.get("quiet", False))
    x_own, y_own = own_windows(dm, bundle)
    x, labels, soft = bundle.arrays()
    variants = {"stimuli": None}
    if soft is not None and cfg.get("distill", True):
        variants["stimuli_kd"] = soft

    students: dict[str, dict] = {}
    (out / "students").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for name, student_cfg in (cfg.get("students") or {}).items():
        factory = instantiate(student_cfg)
        for variant, soft_labels in variants.items():
            student = factory(fs=bundle.fs, seed=seed).fit(x, labels, soft=soft_labels)
            joblib.dump(student, out / "students" / f"{name}-{variant}.joblib")
            students.setdefault(name, {})[variant] = score(student.predict_proba(x_own), y_own)
    result = {
        "experiment": cfg.get("task_name"),
        "seed": seed,
        "bundle": {
            "n": len(x),
            "shape": [bundle.n_chans, bundle.n_times],
            "fs": bundle.fs,
            "channels": bundle.channels,
            "soft_labels": soft is not None,
            "sha256": bundle.checksums,
        },
        "data": {
            "n_records": len(dm.cache.meta["records"]),
            "n_windows": len(y_own),
            "apnea_fraction": round(float(y_own.mean()), 4),
        },
        "students": students,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(out / "third_party.json", result)
    for name, block in students.items():
        print(
            f"{name:<14}"
            + "  ".join(f"{v}: acc {m['acc']:.3f} kappa {m['kappa']:.3f}" for v, m in block.items())
        )
    return result
