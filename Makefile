# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PIP_QUIET := 2>&1 | { grep -v "WARNING: Location" || true; }

# Tools' state stays inside the project; telemetry off (see docs/stack.md).
export PATH := $(VENV)/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export DVC_SITE_CACHE_DIR := $(ROOT)/.dvc/site-cache
export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_HOME := $(ROOT)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90

.PHONY: setup run seeds test test-fast lint bench flow mlflow-ui clean-runs

setup: $(VENV)/.installed

# torch first, pinned, from the local CPU wheel: any range pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 $(PIP_QUIET)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' $(PIP_QUIET)
	$(PY) -c "import torch, dvc, mlflow, prefect" 
	touch $@

# The tasks `make run` reproduces: all by default, or e.g. `make run TASKS=hand`.
TASKS ?= gaze hand

run: setup
	SIMGAN_PIPELINE_ID=make-$$(date +%Y%m%dT%H%M%S) dvc repro $(addprefix compare@,$(TASKS))
	@for t in $(TASKS); do echo "== $$t"; sed -n '/^| trained on/,/^Refined vs/p' reports/$$t/comparison.md; done
	@echo "Reports: reports/<task>/comparison.md   All metrics: dvc metrics show   MLflow: make mlflow-ui"

# The refiner-seed spread: the workspace run (`make run`, seed of params.yaml) plus one queued
# DVC experiment per other seed and task, unchanged stages restored from the cache; then
# reports/<task>/seeds.md and seeds.json. E.g. `make seeds SEEDS="0 1 2" TASKS=gaze`.
SEEDS ?= 0 1 2

seeds: setup
	SIMGAN_PIPELINE_ID=seeds-$$(date +%Y%m%dT%H%M%S) $(PY) -m stages.seeds --tasks $(TASKS) --seeds $(SEEDS)
	@for t in $(TASKS); do echo "== $$t"; sed -n '/^| trained on/,/^Refined vs/p' reports/$$t/seeds.md; done
	@echo "Reports: reports/<task>/seeds.md, seeds.json   Experiments: dvc exp show"

# One pytest worker per core; a test file stays on one worker (the end-to-end DVC graph is
# the critical path: ~5.5 of the ~7 minutes on 2 cores, the rest runs beside it).
test: setup
	$(PY) -m pytest -q -n auto --dist loadfile

test-fast: setup
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_train.py --quick

# The same stages as a Prefect flow (ephemeral Prefect server, logs per stage).
flow: setup
	@for t in $(TASKS); do $(PY) -m flows.pipeline --task $$t; done

# Artifacts are stored as mlflow-artifacts:/ URIs (portable); the UI serves them from here.
mlflow-ui: setup
	@$(PY) -c "from simgan.core import tracking; print(*tracking.ui_links('$(ROOT)'), sep='\n')"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(ROOT)/mlflow.db \
		--artifacts-destination $(ROOT)/mlartifacts --host 127.0.0.1 --port 5000

clean-runs:
	rm -rf mlflow.db mlartifacts .prefect
