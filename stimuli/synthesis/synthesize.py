"""Synthesize N stimuli in independent, separately seeded shards."""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from stimuli.schema import SynthesisConfig
from stimuli.synthesis.module import StimulusGenerator
from stimuli.training import make_trainer

# Seed distance between draws (`synthesis.draw`): far beyond any shard count, so draw d's shards
# never reuse draw 0's seeds within one run seed.
DRAW_SEED_STRIDE = 100_000


def shard_seed(seed: int, index: int, draw: int = 0) -> int:
    """The seed of shard `index` of draw `draw` of a run seeded `seed`."""
    return int(seed) + int(index) + DRAW_SEED_STRIDE * int(draw)


def shard_sizes(n: int, shard_size: int) -> list[int]:
    """Sizes of the shards N is split into: full shards, then the remainder."""
    if n < 1 or shard_size < 1:
        raise ValueError(f"n and shard_size must be >= 1, got n={n}, shard_size={shard_size}")
    return [min(shard_size, n - i * shard_size) for i in range(math.ceil(n / shard_size))]


@contextmanager
def _preserved(models: Sequence[nn.Module | None]) -> Iterator[None]:
    """Restore train/eval flags, ``requires_grad`` and device of the given models, and torch's
    global determinism settings (``Trainer(deterministic=True)`` changes them for good)."""
    present = [m for m in models if m is not None]
    modes = [(sub, sub.training) for m in present for sub in m.modules()]
    grads = [(p, p.requires_grad) for m in present for p in m.parameters()]
    devices = [(m, next(iter(m.parameters()), None)) for m in present]
    devices = [(m, p.device) for m, p in devices if p is not None]
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        yield
    finally:
        for m, device in devices:
            m.to(device)
        for sub, mode in modes:
            sub.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def synthesize(
    teacher: nn.Module,
    *,
    n: int | None = None,
    n_chans: int,
    n_times: int,
    n_classes: int,
    cfg: SynthesisConfig | Mapping[str, Any] | DictConfig | None = None,
    identity_model: nn.Module | None = None,
    centroids: Tensor | None = None,
    student: nn.Module | None = None,
    seed: int = 0,
    shard_index_range: range | tuple[int, int] | None = None,
    trainer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Optimise ``n`` (default ``cfg.n``) stimuli ``(n_chans, n_times)`` against ``teacher``.

    N is split into shards of ``cfg.shard_size``; shard ``i`` is seeded with
    ``shard_seed(seed, i, cfg.draw)`` (``seed + i`` in the default draw 0) and optimised on its
    own, so ``shard_index_range=(a, b)`` computes exactly shards ``a..b-1`` of the full run (for
    splitting one synthesis over jobs and concatenating in shard order).
    The models passed in get back their train/eval flags, ``requires_grad`` and device.
    ``trainer`` is the `trainer/` config node: synthesis runs on one device of its accelerator
    (the teacher's), never data-parallel.

    Returns ``x`` (float32 ``(N', C, T)``), ``targets`` ``(N', K)``, ``labels`` (argmax, int64),
    ``teacher_probs`` (eval mode, no augmentation), ``teacher_agreement`` (fraction with teacher
    argmax == label), ``seconds``, ``losses`` (final unweighted value of each term and the
    weighted ``total``, averaged over shards weighted by shard size), ``history`` (total loss per
    step, per shard), ``term_history`` (each term, the total and the teacher's agreement per step,
    averaged over shards weighted by size) and ``shard_indices``.
    """
    cfg = SynthesisConfig.from_any(cfg)
    n = cfg.n if n is None else int(n)
    sizes = shard_sizes(n, cfg.shard_size)
    if shard_index_range is None:
        indices = range(len(sizes))
    else:
        indices = (
            shard_index_range if isinstance(shard_index_range, range) else range(*shard_index_range)
        )
        if len(indices) == 0 or indices.start < 0 or indices[-1] >= len(sizes):
            raise ValueError(f"shard_index_range {shard_index_range} not within 0..{len(sizes)}")
    start = time.perf_counter()
    xs, targets, probs, history = [], [], [], []
    term_sums: dict[str, torch.Tensor] = {}
    loss_sums: dict[str, float] = {}
    with _preserved([teacher, identity_model, student]):
        for i in indices:
            gen = StimulusGenerator(
                teacher,
                n=sizes[i],
                n_chans=n_chans,
                n_times=n_times,
                n_classes=n_classes,
                cfg=cfg,
                identity_model=identity_model,
                centroids=centroids,
                student=student,
                seed=shard_seed(seed, i, cfg.draw),
            )
            fitter = make_trainer(
                trainer, max_steps=cfg.steps, progress=cfg.progress_bar, single_device=True
            )
            with warnings.catch_warnings():
                # The frozen models are in eval mode on purpose.
                warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
                # Lightning 2.6 building a torch pytree LeafSpec, deprecated in recent torch.
                warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
                fitter.fit(gen)
            xs.append(gen.stimuli.detach().float().cpu())
            targets.append(gen.targets.detach().cpu())
            probs.append(gen.teacher_probs())
            history.append([float(v) for v in gen.history])
            for k, values in gen.term_history.items():
                term = torch.stack(values).double() * sizes[i]
                term_sums[k] = term_sums[k] + term if k in term_sums else term
            for k, v in gen.last_terms.items():
                loss_sums[k] = loss_sums.get(k, 0.0) + float(v) * sizes[i]
    total_n = sum(sizes[i] for i in indices)
    t = torch.cat(targets)
    labels = t.argmax(dim=1)
    teacher_probs = torch.cat(probs)
    return {
        "x": torch.cat(xs),
        "targets": t,
        "labels": labels,
        "teacher_probs": teacher_probs,
        "teacher_agreement": float((teacher_probs.argmax(dim=1) == labels).float().mean()),
        "seconds": time.perf_counter() - start,
        "losses": {k: v / total_n for k, v in loss_sums.items()},
        "history": history,
        "term_history": {k: (v / total_n).tolist() for k, v in term_sums.items()},
        "shard_indices": list(indices),
    }
