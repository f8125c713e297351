"""`python -m stimuli.run +experiment=apnea_cnn`: the Hydra entry point."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import stimuli  # noqa: F401  (registers the config resolvers)
from stimuli.pipeline import run_pipeline


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    return run_pipeline(cfg).get("objective")


if __name__ == "__main__":
    main()
