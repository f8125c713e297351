# stimuli — run `make help` for the targets.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help install test test-full lint format bench profile run sweep clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F ':.*?## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

install: $(VENV)/bin/python  ## create .venv with torch (CPU, pinned) and stimuli[dev]
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	# anonymeter (privacy criterion 3) pins numpy<1.27 but runs on numpy 2: its own deps are in
	# pyproject.toml, the package itself goes in without its pins
	$(PY) -m pip install --no-deps anonymeter==1.1.0

test:  ## the fast suite (what CI runs), on every core (pytest-xdist)
	$(PY) -m pytest -m "not slow" -n auto $(PYTEST_ARGS)

test-full:  ## every test, the slow ones too
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

lint:  ## ruff lint + format check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format:  ## ruff fix + format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench:  ## benchmarks; results land in bench/results/ (utility: ~40 min on 2 cores)
	$(PY) -m bench.data_cache
	$(PY) -m bench.data_scale
	$(PY) -m bench.stage_scale
	$(PY) -m bench.synthesis_throughput
	$(PY) -m bench.parallel_training
	$(PY) -m bench.cnn_block
	$(PY) -m bench.cnn_block --threads 1
	$(PY) -m bench.bn_moments
	$(PY) -m bench.allocator
	$(PY) -m bench.uninitialized_fill --threads 1
	$(PY) -m bench.utility

profile:  ## where a default run's time goes (py-spy), bench/results/profile.json
	$(PY) -m bench.profile

run:  ## the open-cohort experiment end to end
	$(PY) -m stimuli.run +experiment=apnea_cnn

clean:  ## remove outputs and caches (not the data)
	rm -rf outputs multirun .cache .pytest_cache .ruff_cache
