"""`python -m stimuli.run +experiment=apnea_cnn`: the Hydra entry point.

Returns `results.json`'s `objective` (default: the distilled teacher-architecture student's
kappa on the validation persons) so Hydra sweepers (Optuna, Nevergrad) can optimize it.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.console import quiet_library_noise
from stimuli.pipeline import run_pipeline


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    quiet_library_noise()
    objective = run_pipeline(cfg).get("objective")
    return None if objective is None else float(objective["value"])


if __name__ == "__main__":
    main()
