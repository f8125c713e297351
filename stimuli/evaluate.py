"""`python -m stimuli.evaluate run_dir=RUN data=... data.records=[...]`: score a finished run on
records (or a whole cohort) it never saw, writing `evaluation.json` in the run folder."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import joblib
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.classifier import predict_proba
from stimuli.console import quiet_library_noise
from stimuli.io import read_json, write_json
from stimuli.metrics import score
from stimuli.teacher import load_teacher

log = logging.getLogger(__name__)


def evaluate_run(run_dir: str | Path, data_cfg: DictConfig, quiet: bool = False) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "config_resolved.yaml").is_file():
        raise FileNotFoundError(
            f"{run_dir}: not a finished run (no config_resolved.yaml); pass the run directory "
            "that `python -m stimuli.run` printed."
        )
    run_cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    dm = instantiate(data_cfg, progress=not quiet)
    dm.prepare_data()
    norm = run_dir / "normalization.json"
    x, y = dm.all_arrays(read_json(norm) if norm.is_file() else None)
    summary = read_json(run_dir / "data_summary.json")
    expected = (len(summary["channels"]), summary["n_times"])
    if x.shape[1:] != expected:
        raise ValueError(
            f"{dm.root}: windows of shape {x.shape[1:]} do not fit the run's models {expected}; "
            "use the same channels, sampling rate and window length."
        )
    result: dict = {
        "run_dir": str(run_dir),
        "data": {
            "root": str(dm.root),
            "n_records": len(dm.cache.meta["records"]),
            "n_windows": len(y),
            "apnea_fraction": round(float(y.mean()), 4),
        },
    }
    teacher_path = run_dir / "teacher.pt"
    if teacher_path.is_file():
        shape = (x.shape[1], dm.n_classes, x.shape[2])
        teacher = load_teacher(teacher_path, run_cfg.model, run_cfg.teacher, shape)
        result["teacher"] = score(predict_proba(teacher, x), y)
    students: dict = {}
    for path in sorted((run_dir / "students").glob("*.joblib")):
        name, variant = path.stem.rsplit("-", 1)
        students.setdefault(name, {})[variant] = score(joblib.load(path).predict_proba(x), y)
    result["students"] = students
    write_json(run_dir / "evaluation.json", result)
    return result


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    quiet_library_noise()
    result = evaluate_run(cfg.run_dir, cfg.data, quiet=cfg.quiet)
    log.info("evaluation written to %s/evaluation.json", cfg.run_dir)
    if "teacher" in result:
        t = result["teacher"]
        print(
            f"teacher: acc {t['acc']:.3f} kappa {t['kappa']:.3f} "
            f"on {result['data']['n_windows']} windows"
        )
    for name, block in result["students"].items():
        print(
            name,
            "  ".join(f"{v}: acc {m['acc']:.3f} kappa {m['kappa']:.3f}" for v, m in block.items()),
        )


if __name__ == "__main__":
    main()
