"""A quick privacy probe of synthesis settings: one shard each, scored by the audit's attackers.

    python -m experiments.shard_probe NAME "override ..." [NAME "override ..." ...]

For each variant, shard 0 of the `apnea_cnn` stimuli (or of the `+experiment=` it names; 256
stimuli, cached like any shard, so a later full run reuses it) is synthesized and scored by the
privacy audit's auditor (trained once, as the `privacy` stage trains it) and by
nearest-neighbour attribution in raw space. It also reports the teacher's agreement with the
stimulus labels and two signal statistics that real RR windows bound (sample-to-sample
variability and the share of power in the top third of the spectrum, with the range of the
real training persons' medians). About 2 minutes per new shard on one thread, against about 15
for a full run with its audit; a variant that looks good here still needs the full run. Rows
go to `experiments/results/shard_probe.json`.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import torch
from omegaconf import OmegaConf

from stimuli.config import compose_config
from stimuli.io import read_json, write_json
from stimuli.paths import REPO_ROOT
from stimuli.pipeline import open_job
from stimuli.pipeline.build_stages import shard_entry
from stimuli.privacy.auditor import posteriors, train_auditor
from stimuli.privacy.neighbours import knn
from stimuli.privacy.real import RealWindows
from stimuli.privacy.stats import attribution_stats, plain

OUT = REPO_ROOT / "experiments" / "results" / "shard_probe.json"


def signal_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per window (first channel): sd of the first differences, and the share of the
    mean-removed power in the top third of the spectrum."""
    x = x[:, 0]
    power = np.abs(np.fft.rfft(x - x.mean(1, keepdims=True), axis=1)) ** 2
    top = power[:, 2 * power.shape[1] // 3 :].sum(1) / power.sum(1)
    return {"diff_sd": np.diff(x, axis=1).std(1), "high_band": top}


def probe(name: str, overrides: list[str], tmp: str, state: dict) -> dict:
    base = [] if any(o.startswith("+experiment=") for o in overrides) else ["+experiment=apnea_cnn"]
    cfg = compose_config(
        [
            *base,
            "quiet=true",
            "logger=none",
            "threads=1",
            f"paths.output_dir={tmp}/{name}",
            *overrides,
        ]
    )
    job = open_job(cfg)
    dm = job.get("dm")
    if "auditor" not in state:
        pcfg = OmegaConf.to_container(cfg.privacy, resolve=True)
        state["real"] = RealWindows.for_audit(dm, pcfg)
        state["auditor"] = train_auditor(state["real"], pcfg, int(cfg.seed))
        state["real_stats"] = signal_stats(state["real"].x_train)
    real = state["real"]
    entry = shard_entry(job.ctx, dm, job.get("teacher"), job.get("identity"), 0)
    shard = np.load(entry.path / "shard.npz")
    x = shard["x"].astype(np.float32)
    by_auditor = posteriors(state["auditor"], x).argmax(1)
    nearest = real.label[knn(real.x_train, x, 1)[1][:, 0]]
    stats = signal_stats(x)
    counts = attribution_stats(by_auditor, real.n_persons, real.train_counts)
    return {
        "name": name,
        "overrides": overrides,
        "n": len(x),
        "teacher_agreement": float((shard["teacher_probs"].argmax(1) == shard["labels"]).mean()),
        "auditor": counts,
        "neighbour_raw": attribution_stats(nearest, real.n_persons, real.train_counts),
        **{f"{k}_median": float(np.median(v)) for k, v in stats.items()},
        **{
            f"real_{k}_person_range": [
                float(min(np.median(v[real.label == p]) for p in range(real.n_persons))),
                float(max(np.median(v[real.label == p]) for p in range(real.n_persons))),
            ]
            for k, v in state["real_stats"].items()
        },
    }


def main(args: list[str]) -> None:
    if not args or len(args) % 2:
        raise SystemExit('usage: python -m experiments.shard_probe NAME "override ..." [...]')
    torch.set_num_threads(1)
    state: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in zip(args[::2], args[1::2]):
            row = probe(name, overrides.split(), tmp, state)
            rows = {r["name"]: r for r in (read_json(OUT) if OUT.is_file() else [])} | {name: row}
            write_json(OUT, plain(list(rows.values())))
            a, n = row["auditor"], row["neighbour_raw"]
            print(
                f"{name}: agreement {row['teacher_agreement']:.3f} | auditor top-1 ratio "
                f"{a['top1_ratio']:.2f} entropy {a['entropy']:.3f} | NN raw {n['top1_ratio']:.2f} "
                f"/ {n['entropy']:.3f} | diff sd {row['diff_sd_median']:.2f} (real persons "
                f"{row['real_diff_sd_person_range'][0]:.2f}-{row['real_diff_sd_person_range'][1]:.2f})"
                f" | high band {row['high_band_median']:.3f} | {a['counts']}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
