"""Stage `release` of a `pipeline.Run`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from stimuli.release.bundle import bundle_files, verify_bundle, write_release
from stimuli.release.datacard import make_datacard, plain_config
from stimuli.release.forbidden import ForbiddenInfo, forbidden_info

log = logging.getLogger(__name__)


def releases_soft_labels(cfg: Any) -> bool:
    """Whether the bundle carries the stimuli's soft labels (`release.soft_labels`)."""
    return bool((plain_config(cfg.get("release")) or {}).get("soft_labels", True))


def release_contents(run: Any) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, datacard) of the bundle of a `pipeline.Run` whose data stage ran."""
    cfg, dm = run.cfg, run.dm
    run.teacher_model()  # fills results["teacher"] (the utility summary reads it)
    stim = run.stimuli()
    arrays = {
        "x": np.ascontiguousarray(stim["x"], dtype=np.float32),
        "labels": np.asarray(stim["labels"], dtype=np.int64),
    }
    if releases_soft_labels(cfg):
        arrays["soft"] = np.ascontiguousarray(run.soft_labels(), dtype=np.float32)
    card = make_datacard(
        arrays,
        channels=dm.channels,
        fs=dm.fs,
        label_names=dm.label_names,
        normalize=dm.normalize,
        synthesis=cfg.synthesis,
        model=cfg.model,
        stimuli_meta=run.results.get("stimuli"),
        results=run.results,
        soft_label_teachers=run.n_label_teachers,
    )
    return arrays, card


def forbidden_for_run(run: Any) -> ForbiddenInfo:
    """What a bundle of this run must not carry: its cohort, its models, its paths."""
    from stimuli.paths import REPO_ROOT

    cfg = run.cfg
    rcfg = plain_config(cfg.get("release")) or {}
    models = {"teacher": run.teacher_model()}
    if (label_teachers := run.label_teachers()) is not None:
        models["label_teachers"] = label_teachers
    if rcfg.get("check_identity_model", True):
        models["identity"] = run.identity_model()
    copy_cfg = rcfg.get("copy_check") or {}
    return forbidden_info(
        run.dm,
        models,
        extra_paths=[run.out, run.cache_dir, Path.home(), REPO_ROOT],
        copy_sample=int(copy_cfg.get("max_windows", 3000)),
        copy_percentile=float(copy_cfg.get("percentile", 1.0)),
        seed=int(cfg.seed),
    )


def release_stage(run: Any) -> dict:
    """Stage `release` of a `pipeline.Run`: build, check and write `release/` in the run folder."""
    arrays, card = release_contents(run)
    forbidden = forbidden_for_run(run)
    dest = write_release(run.out / "release", bundle_files(arrays, card), forbidden)
    sums = verify_bundle(dest)
    log.info("release: %d stimuli written to %s", len(arrays["x"]), dest)
    return {
        "path": str(dest),
        "n": len(arrays["x"]),
        "soft_labels": "soft" in arrays,
        "sha256": sums,
        "copy_check": dict(forbidden.copy_stats),
    }
