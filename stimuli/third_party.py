"""The third party's side: train students on a released bundle alone, score them on own data.

    python -m stimuli.third_party +experiment=third_party release_path=RUN/release \
        data=closed_resp student=cnn

(or `python -m stimuli.run` with the same overrides: `stages=[third_party]` comes here) needs
nothing of the data owner but the bundle: each student is fitted on the stimuli (hard labels,
`stimuli`; and on the teacher's soft labels, `stimuli_kd`, when the bundle has them and
`distill=true`) and scored on every window of the third party's cohort (`data=...`), written to
`third_party.json` in the run folder (a student that could not be trained on a variant gets
`{"error": message}` there), the students themselves to `students/NAME-VARIANT.joblib`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.console import quiet_library_noise, quiet_lightning
from stimuli.io import write_json
from stimuli.release.datamodule import StimuliDataModule
from stimuli.students.fit import Variants, fit_students, score_students, student_factories

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
        quiet_lightning()
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
    variants: Variants = {"stimuli": (x, labels, None)}
    if soft is not None and cfg.get("distill", True):
        variants["stimuli_kd"] = (x, labels, soft)

    t0 = time.perf_counter()
    fitted = fit_students(
        student_factories(cfg.get("students")),
        variants,
        fs=bundle.fs,
        seed=seed,
        save_dir=out / "students",
    )
    students, _ = score_students(fitted, x_own, y_own)
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
        print(f"{name:<14}" + "  ".join(_line(v, m) for v, m in block.items()))
    return result


def _line(variant: str, metrics: dict) -> str:
    if "error" in metrics:
        return f"{variant}: not trained ({metrics['error']})"
    return f"{variant}: acc {metrics['acc']:.3f} kappa {metrics['kappa']:.3f}"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    quiet_library_noise()
    run_third_party(cfg)


if __name__ == "__main__":
    main()
