"""The anonymity audit of a mechanism: the pipeline on K person splits, pooled into a verdict.

    python -m stimuli.audit +experiment=apnea_cnn audit.splits=8 [launcher=joblib] [overrides]
    python -m stimuli.audit --pool <sweep dir> [overrides]   # pool a finished sweep again

Runs `python -m stimuli.run -m` with `data.split.seed` = audit.first_seed … + K - 1 and
`stages=audit.stages` through the configured Hydra launcher (`launcher=joblib` or `slurm` scale
it out; cached stages are reused, so a second audit of the same mechanism trains nothing), then
writes `<sweep dir>/audit/verdict.json` and `<sweep dir>/audit/audit_report.html` and keeps the
verdict in the cache (`verdicts/<mechanism hash>.json`), where the releases of this mechanism
find it (their datacard carries it; `release.require_verdict=true` refuses without a passing one).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from stimuli.config import compose_config
from stimuli.io import write_json
from stimuli.keys import mechanism_hash
from stimuli.privacy.verdict import utility_over_splits, verdict
from stimuli.store import ArtifactStore

log = logging.getLogger("stimuli.audit")


def split_overrides(cfg: DictConfig, overrides: Sequence[str], sweep_dir: Path) -> list[str]:
    """The multirun's overrides: the user's, the K split seeds, the audit's stages, and
    `hard_labels=false` unless the user set `hard_labels` (the verdict's utility compares real
    and distilled students; the hard-label ones are an ablation it does not need)."""
    first, k = int(cfg.audit.first_seed), int(cfg.audit.splits)
    if k < 2:
        raise ValueError(f"audit.splits={k}: an audit pools at least 2 person splits (8 or more)")
    seeds = ",".join(str(first + i) for i in range(k))
    stages = ",".join(str(s) for s in cfg.audit.stages)
    own = [o for o in overrides if not o.startswith(("audit.", "data.split.seed=", "stages="))]
    if not any(o.lstrip("+~").startswith("hard_labels=") for o in own):
        own.append("hard_labels=false")
    return [*own, f"data.split.seed={seeds}", f"stages=[{stages}]", f"hydra.sweep.dir={sweep_dir}"]


def finished_splits(sweep_dir: Path) -> list[tuple[int, dict, dict]]:
    """(results.json, privacy.json details) of every finished job of the sweep, by split seed."""
    jobs = []
    for results_file in sorted(Path(sweep_dir).glob("*/results.json")):
        privacy_file = results_file.parent / "privacy.json"
        if not privacy_file.is_file():
            continue
        results = json.loads(results_file.read_text())
        details = json.loads(privacy_file.read_text())["details"]
        cfg = OmegaConf.load(results_file.parent / "config_resolved.yaml")
        jobs.append((int(cfg.data.split.seed), results, details))
    return sorted(jobs, key=lambda j: j[0])


def pool(cfg: DictConfig, sweep_dir: Path) -> dict:
    """verdict.json and audit_report.html of a finished sweep; the verdict is also stored
    under the mechanism's hash in the cache."""
    from stimuli.report.audit_page import write_audit_report

    jobs = finished_splits(sweep_dir)
    if len(jobs) < 2:
        raise SystemExit(
            f"{sweep_dir}: {len(jobs)} finished split(s) with results.json and privacy.json; "
            "an audit pools at least 2 (run the sweep first)"
        )
    pcfg = OmegaConf.to_container(cfg.privacy, resolve=True)
    results = [r for _, r, _ in jobs]
    other_night = [r["privacy"].get("auditor_other_night") for r in results]
    judged, pooled = verdict(
        [d for _, _, d in jobs],
        [r["privacy"]["auditor"] for r in results],
        pcfg,
        int(cfg.seed),
        other_night if all(other_night) else None,
    )
    mechanism = mechanism_hash(cfg)
    out = {
        "mechanism": mechanism,
        "experiment": cfg.get("task_name"),
        "split_seeds": [seed for seed, _, _ in jobs],
        **judged,
        "utility": utility_over_splits(results),
        "audited": datetime.now().astimezone().strftime("%Y-%m-%d"),
    }
    folder = Path(sweep_dir) / "audit"
    write_json(folder / "verdict.json", out)
    write_json(ArtifactStore(Path(cfg.paths.cache_dir)).verdict_path(mechanism), out)
    write_audit_report(folder / "audit_report.html", out, pooled)
    log.info("audit: anonymity %s (%s)", out["anonymity"], folder / "verdict.json")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pool_only = None
    if args[:1] == ["--pool"]:
        if len(args) < 2:
            raise SystemExit("usage: python -m stimuli.audit --pool <sweep dir> [overrides]")
        pool_only, args = Path(args[1]), args[2:]
    cfg = compose_config([*args, "paths.output_dir=."])
    if pool_only is None:
        stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        default = Path(cfg.paths.log_dir) / str(cfg.task_name) / "audits" / stamp
        sweep_dir = Path(cfg.audit.get("dir") or default)
        command = [
            sys.executable,
            "-m",
            "stimuli.run",
            "-m",
            *split_overrides(cfg, args, sweep_dir),
        ]
        log.info("audit: %s", " ".join(command))
        start = time.perf_counter()
        subprocess.run(command, check=True)
        seconds = time.perf_counter() - start
        log.info("audit: %d splits ran in %.0f s", int(cfg.audit.splits), seconds)
    else:
        sweep_dir = pool_only
    out = pool(cfg, sweep_dir)
    print(f"anonymity {out['anonymity']}: {sweep_dir / 'audit' / 'verdict.json'}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(main())
