"""Sharded synthesis over the artifact store: each shard cached on its own, merged in order.

Shard `i` is seeded with `seed + i`, so jobs can share the work (`synthesis_shards=[a, b]`) and
a later job merges the shards into the same arrays one job synthesizing everything would give.
With the competition term on, shard `i` is optimised against a competitor distilled from
shards `0..i-1` (cached ones are reused), which makes the shards sequential.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from stimuli.parallel import run_tasks
from stimuli.store import ArtifactStore, Entry
from stimuli.synthesis.synthesize import shard_sizes, synthesize

log = logging.getLogger(__name__)
ARRAYS = ("x", "labels", "targets", "teacher_probs")


@dataclass(frozen=True)
class SynthesisInputs:
    """What every shard is optimised against. `centroids()` is called only when a shard is
    synthesized (cached shards need no embedding of the training windows);
    `competitor(x, labels, soft, index)` fits the competition student for shard `index`."""

    teacher: nn.Module
    identity: nn.Module | None
    shape: tuple[int, int, int]  # (n_chans, n_times, n_classes)
    centroids: Callable[[], Tensor | None]
    competitor: Callable[[np.ndarray, np.ndarray, np.ndarray, int], nn.Module]


def n_shards(cfg: Mapping[str, Any]) -> int:
    return len(shard_sizes(int(cfg["n"]), int(cfg["shard_size"])))


def shard_indices(cfg: Mapping[str, Any], chosen: Any = None) -> list[int]:
    """The shards a job synthesizes: `chosen` = [first, stop] (`synthesis_shards`), else all."""
    total = n_shards(cfg)
    if chosen is None:
        return list(range(total))
    first, stop = (int(v) for v in chosen)
    if not 0 <= first < stop <= total:
        raise ValueError(
            f"synthesis_shards={list(chosen)} is not a range within 0..{total} "
            f"(synthesis.n={cfg['n']} in shards of {cfg['shard_size']})"
        )
    return list(range(first, stop))


def _arrays(path: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(path / name) as f:
        return {k: f[k] for k in f.files}


def shard_key(key: str, index: int) -> str:
    return f"{key}-shard{index:04d}"


def stimulus_shard(
    store: ArtifactStore,
    key: str,
    index: int,
    cfg: Mapping[str, Any],
    inputs: SynthesisInputs,
    *,
    seed: int,
    trainer: Mapping[str, Any] | None = None,
) -> Entry:
    """Shard `index` of the stimuli keyed `key`, synthesized unless cached."""

    def write(folder: Path) -> dict:
        shard_cfg = {**cfg, "weights": dict(cfg["weights"])}
        student = None
        if index > 0 and float(cfg["weights"].get("competition", 0.0)):
            parts = [
                _arrays(
                    stimulus_shard(store, key, j, cfg, inputs, seed=seed, trainer=trainer).path,
                    "shard.npz",
                )
                for j in range(index)
            ]
            x, y, soft = (
                np.concatenate([p[k] for p in parts]) for k in ("x", "labels", "teacher_probs")
            )
            student = inputs.competitor(x, y, soft, index)
        else:  # shard 0 (or competition off): nothing to compete with
            shard_cfg["weights"]["competition"] = 0.0
        n_chans, n_times, n_classes = inputs.shape
        out = synthesize(
            inputs.teacher,
            n_chans=n_chans,
            n_times=n_times,
            n_classes=n_classes,
            cfg=shard_cfg,
            identity_model=inputs.identity,
            centroids=inputs.centroids(),
            student=student,
            seed=seed,
            shard_index_range=(index, index + 1),
            trainer=trainer,
        )
        np.savez(folder / "shard.npz", **{k: out[k].numpy() for k in ARRAYS})
        return {
            "n": int(out["x"].shape[0]),
            "seconds": float(out["seconds"]),
            "losses": {k: float(v) for k, v in out["losses"].items()},
            "loss_history": out["term_history"],
        }

    entry = store.entry("stimuli_shards", shard_key(key, index), write)
    log.info("stimulus shard %d %s", index, "synthesized" if entry.built else "cached")
    return entry


def _size_weighted_mean(metas: list[dict], field: str) -> dict:
    """Size-weighted mean over the shards that have each term (shard 0 has no competition
    term)."""
    out = {}
    for k in dict.fromkeys(k for m in metas for k in m[field]):
        have = [m for m in metas if k in m[field]]
        sizes = np.array([m["n"] for m in have], dtype=np.float64)
        values = np.asarray([m[field][k] for m in have], dtype=np.float64)
        out[k] = (values.T @ sizes / sizes.sum()).tolist()
    return out


def stimuli_entry(
    store: ArtifactStore,
    key: str,
    cfg: Mapping[str, Any],
    inputs: SynthesisInputs,
    *,
    seed: int,
    trainer: Mapping[str, Any] | None = None,
    jobs: int = 1,
) -> Entry:
    """All stimuli keyed `key`: the shards merged in shard order (`stimuli.npz`); its meta holds
    the size-weighted mean loss terms and their history per step. With `jobs` > 1 and no
    competition term (each shard then depends on the shards before it), the missing shards are
    synthesized side by side in worker processes (`stimuli.parallel`)."""

    def write(folder: Path) -> dict:
        if jobs > 1 and not float(cfg["weights"].get("competition", 0.0)):
            _synthesize_in_workers(store, key, cfg, inputs, seed, trainer, jobs)
        shards = [
            stimulus_shard(store, key, i, cfg, inputs, seed=seed, trainer=trainer)
            for i in range(n_shards(cfg))
        ]
        parts = [_arrays(s.path, "shard.npz") for s in shards]
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        np.savez(folder / "stimuli.npz", **merged)
        agree = merged["teacher_probs"].argmax(1) == merged["labels"]
        metas = [s.meta for s in shards]
        return {
            "n": int(sum(m["n"] for m in metas)),
            "steps": int(cfg["steps"]),
            "shards": len(shards),
            "teacher_agreement": round(float(agree.mean()), 4),
            "seconds": round(sum(m["seconds"] for m in metas), 2),
            "losses": _size_weighted_mean(metas, "losses"),
            "loss_history": _size_weighted_mean(metas, "loss_history"),
        }

    return store.entry("stimuli", key, write)


def _synthesize_in_workers(
    store: ArtifactStore,
    key: str,
    cfg: Mapping[str, Any],
    inputs: SynthesisInputs,
    seed: int,
    trainer: Mapping[str, Any] | None,
    jobs: int,
) -> None:
    """The shards not yet in the store, synthesized in `jobs` worker processes (each writes its
    own store entry). The centroids are computed here once, so the workers need no data."""
    missing = [
        i for i in range(n_shards(cfg)) if store.find("stimuli_shards", shard_key(key, i)) is None
    ]
    if len(missing) < 2:
        return
    centroids = inputs.centroids()
    portable = dataclasses.replace(inputs, centroids=functools.partial(_constant, centroids))
    quiet = {**cfg, "progress_bar": False}  # bars from several processes would interleave
    tasks = [
        functools.partial(
            stimulus_shard, store, key, i, quiet, portable, seed=seed, trainer=trainer
        )
        for i in missing
    ]
    t = time.perf_counter()
    run_tasks(tasks, jobs)
    log.info(
        "stimulus shards %s synthesized in %d worker processes in %.1f s",
        missing,
        min(jobs, len(missing)),
        time.perf_counter() - t,
    )


def _constant(value: Tensor | None) -> Tensor | None:
    return value


def load_stimuli(entry: Entry) -> dict[str, np.ndarray]:
    return _arrays(entry.path, "stimuli.npz")
