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

.PHONY: help setup run seeds exp test test-scale test-fast lint bench flow schedule schedule-stop mlflow-ui clean-runs

help: ## list the targets (this list)
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
		awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv with the pinned dependencies (run and test do it)

# torch first, pinned, from the local CPU wheel: any range pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 $(PIP_QUIET)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,scale]' $(PIP_QUIET)
	$(PY) -c "import torch, dvc, mlflow, prefect" 
	touch $@

# The tasks `make run` reproduces: all by default, or e.g. `make run TASKS=hand`.
ALL_TASKS := gaze hand
TASKS ?= $(ALL_TASKS)
# The review page covers every task: DVC builds it when all tasks run; for a subset it is
# rebuilt outside DVC from the reports there are (other tasks show as "not run"), since
# `dvc repro review` would run the other tasks' whole pipelines first.
SUBSET := $(filter-out $(TASKS),$(ALL_TASKS))

# DVC outputs are pushed to DVC_REMOTE after a successful run when .dvc/config names no default
# remote (set in .dvc/config.local; DVC_REMOTE=s3://bucket/path for S3, docs/scale.md;
# DVC_REMOTE=none skips; a failed push is one WARNING line,
# not a failed run). `dvc repro` waits (up to SIMGAN_DVC_LOCK_WAIT_SECONDS, default 1800) while
# another DVC process, e.g. a scheduled run, holds the workspace (flows/dvc_wait.py).
DVC_REMOTE ?= $(abspath $(ROOT)/../simgan-dvc-remote)

# Stages whose upstream stages are done run side by side, each in its own
# `dvc repro --single-item` (flows/side_by_side.py): by default as many as the cores over the
# trainers' `threads` key (1 in params.yaml, so one stage per core). Training uses that key
# wherever it runs (the trained bytes depend on the thread count; docs/performance.md), so
# MAX_PARALLEL=1 (one stage at a time) changes the wall time, not the results.
MAX_PARALLEL ?=

# One MLflow parent run per task and `make run` (docs/tracking.md); the review page of a TASKS
# subset, built outside DVC, is logged to the same parents.
run: export SIMGAN_PIPELINE_ID := make-$(shell date +%Y%m%dT%H%M%S)
run: setup ## the whole pipeline for TASKS (default: all), then reports/index.html; dvc push
	$(PY) -m flows.side_by_side $(if $(MAX_PARALLEL),--max-parallel $(MAX_PARALLEL)) \
		$(addprefix compare@,$(TASKS)) $(if $(SUBSET),,review)
	$(if $(SUBSET),$(PY) -m stages.review,@true)
	@$(PY) -m flows.remote push --default "$(DVC_REMOTE)"
	@for t in $(TASKS); do echo "== $$t"; sed -n '/^| trained on/,/^Refined vs/p' reports/$$t/comparison.md; done
	@echo "Review page: reports/index.html   Headline metrics: dvc metrics show   MLflow: make mlflow-ui"

# The refiner-seed spread: the workspace run (`make run`, seed of params.yaml) plus one queued
# DVC experiment per other seed and task, unchanged stages restored from the cache; then
# reports/<task>/seeds.md and seeds.json. E.g. `make seeds SEEDS="0 1 2" TASKS=gaze`.
SEEDS ?= 0 1 2

seeds: setup ## refiner-seed spread as DVC experiments (SEEDS="0 1 2", TASKS=...)
	SIMGAN_PIPELINE_ID=seeds-$$(date +%Y%m%dT%H%M%S) $(PY) -m stages.seeds --tasks $(TASKS) --seeds $(SEEDS)
	@for t in $(TASKS); do echo "== $$t"; sed -n '/^| trained on/,/^Refined vs/p' reports/$$t/seeds.md; done
	@echo "Reports: reports/<task>/seeds.md, seeds.json   Experiments: dvc exp show"

# One pytest worker per core; a test file stays on one worker (the end-to-end DVC graph is
# the critical path: ~5.5 of the ~7 minutes on 2 cores, the rest runs beside it).
# The experiments of HEAD (make seeds, dvc exp run): headline.json of TASKS and the params
# that differ between them; no dependency hashes.
exp: setup ## dvc exp show with only the columns that matter (headline metrics, changed params)
	dvc exp show --no-pager --only-changed --drop 'Created|.*/.*' \
		--keep 'reports/($(subst $(eval) ,|,$(strip $(TASKS))))/headline\.json:.*' --precision 3

test: setup ## every test but the scale-out ones (about 10 min on 2 cores)
	$(PY) -m pytest -q -n auto --dist loadfile -m "not scale"

# Real PostgreSQL + S3 (moto) + mlflow server, Dask clusters and torchrun jobs of whole stages:
# minutes each on 2 cores, so apart from `make test` (.ci/run runs both).
test-scale: setup ## the scale-out tests (servers, clusters, torchrun stages; docs/scale.md)
	$(PY) -m pytest -q -n auto --dist loadfile -m scale

test-fast: setup ## the tests not marked slow (no end-to-end DVC graph)
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow and not scale"

lint: setup ## ruff check
	$(VENV)/bin/ruff check .

# Every throughput figure side by side (docs/performance.md): the refiner step against a plain
# torch loop, GFLOP/s against this machine's GEMM rate, render, refine, estimator training,
# ingest, stage times. `make bench BENCH=--quick` for a shorter run.
BENCH ?=
bench: setup ## throughput side by side -> benchmarks/results.json (BENCH=--quick)
	$(PY) -m benchmarks.bench $(BENCH)

# The same stages as a Prefect flow (ephemeral Prefect server, logs per stage).
flow: setup ## the same stages as a Prefect flow, per task
	@for t in $(TASKS); do $(PY) -m flows.pipeline --task $$t; done

# Scheduled runs from a local Prefect server on 127.0.0.1:PREFECT_PORT (started if not running,
# state in .prefect/): one at a time (server-side limit), waiting for a manual `dvc repro`.
# E.g. `make schedule CRON="0 3 * * *"`, `make schedule INTERVAL=3600 TASKS=gaze`.
# `make schedule-stop` stops the serving process and the server (the schedule is kept).
PREFECT_PORT ?= 4200
CRON ?=
INTERVAL ?=

schedule: setup ## run the pipeline on a schedule (CRON="0 3 * * *" or INTERVAL=3600)
	$(PY) -m flows.schedule start --port $(PREFECT_PORT) $(if $(CRON),--cron "$(CRON)") \
		$(if $(INTERVAL),--interval $(INTERVAL)) $(if $(SUBSET),--task $(TASKS))

schedule-stop: ## stop the scheduled runs and the Prefect server (by PID)
	$(PY) -m flows.schedule stop

# Artifacts are stored as mlflow-artifacts:/ URIs (portable); the UI serves them from here.
mlflow-ui: setup ## the MLflow UI on http://127.0.0.1:5000 (prints each experiment's runs URL)
	@$(PY) -c "from simgan.core import tracking; print(*tracking.ui_links('$(ROOT)'), sep='\n')"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(ROOT)/mlflow.db \
		--artifacts-destination $(ROOT)/mlartifacts --host 127.0.0.1 --port 5000

clean-runs: ## delete MLflow runs and Prefect state (mlflow.db, mlartifacts, .prefect)
	rm -rf mlflow.db mlartifacts .prefect
