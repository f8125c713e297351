"""What the in-process comparisons of `bench/` share: alternated arms, their speed-up, and the
default student and stimulus-shard workloads of `+experiment=apnea_cnn`."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from stimuli.config import compose_config
from stimuli.data.cohort import CohortDataModule
from stimuli.models import build_network
from stimuli.pipeline.build_stages import build_datamodule
from stimuli.synthesis import synthesize


def default_experiment(threads: int | None = None) -> tuple[DictConfig, CohortDataModule]:
    """`+experiment=apnea_cnn`'s config and data module, after setting torch's CPU threads to
    `threads` when given (the comparisons' common start)."""
    if threads:
        torch.set_num_threads(threads)
    cfg = compose_config(["+experiment=apnea_cnn", "quiet=true", "paths.output_dir=."])
    return cfg, build_datamodule(cfg, progress=False)


def alternate(arms: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each arm, the arms run in turn `repeats` times."""
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            t = time.perf_counter()
            arm()
            seconds[name].append(round(time.perf_counter() - t, 2))
    return seconds


def warm_then_alternate(
    arms: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """`alternate` after one untimed run of each arm (start-up costs)."""
    for arm in arms.values():
        arm()
    return alternate(arms, repeats)


def student_and_shard_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The options of a comparison on a cnn student fit and one stimulus shard."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--student-steps", type=int, default=200)
    parser.add_argument("--shard-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    return parser


@dataclass
class StudentAndShard:
    """What a comparison on a cnn student fit and one stimulus shard works on: the default
    split's real training windows `x`, `y` with `student_settings`, and `shard(teacher,
    identity)` (see `shard_workload`)."""

    cfg: DictConfig
    x: np.ndarray
    y: np.ndarray
    student_settings: dict
    teacher: nn.Module
    identity: nn.Module
    shard: Callable[..., object]


def student_and_shard(args: argparse.Namespace) -> StudentAndShard:
    """The workloads of `student_and_shard_parser`'s options, torch's threads set first."""
    cfg, dm = default_experiment(args.threads)
    x, y, _ = dm.datasets["train"].arrays()
    teacher, identity, shard = shard_workload(cfg, dm, args.shard_steps)
    return StudentAndShard(
        cfg, x, y, student_settings(cfg, args.student_steps), teacher, identity, shard
    )


def speedup(seconds: dict[str, list[float]], base: str, other: str, **facts: object) -> dict:
    """`facts`, the seconds, and how many times faster `other` ran than `base` (medians)."""
    ratio = statistics.median(seconds[base]) / statistics.median(seconds[other])
    return {**facts, "seconds": seconds, "speedup": round(ratio, 3)}


def student_settings(cfg: DictConfig, steps: int) -> dict:
    """`student_defaults` for a `NeuralStudent`, with `steps` steps."""
    settings = OmegaConf.to_container(cfg.student_defaults, resolve=True)
    settings.pop("mixup", None)
    return {**settings, "steps": steps}


def shard_workload(
    cfg: DictConfig, dm: CohortDataModule, steps: int
) -> tuple[nn.Module, nn.Module, Callable[..., object]]:
    """The experiment's teacher and identity architectures (random weights: speed does not depend
    on them) and `shard(teacher, identity, seed)`, one default-size shard of `steps` steps."""
    torch.manual_seed(0)
    teacher = build_network(cfg.model, dm.n_chans, 2, dm.n_times).eval().requires_grad_(False)
    identity = build_network(cfg.identity.model, dm.n_chans, 14, dm.n_times)
    synth = OmegaConf.to_container(cfg.synthesis, resolve=True)
    synth.update(n=int(synth["shard_size"]), steps=steps, progress_bar=False)
    shard = partial(synthesize, n_chans=dm.n_chans, n_times=dm.n_times, n_classes=2, cfg=synth)

    def run(teacher: nn.Module, identity: nn.Module, seed: int = 0) -> object:
        return shard(teacher, identity_model=identity, seed=seed)

    return teacher, identity.eval().requires_grad_(False), run
