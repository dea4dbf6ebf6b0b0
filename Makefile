# The two commands: `make demo` (the whole pipeline, embedded mode) and `make test`.
# Both work on a fresh clone with only Python 3.11+, git and make: uv is installed if missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTEST_ARGS ?=

.PHONY: help sync demo test test-fast test-cluster lint format bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@echo "uv not found: installing it into .tools/ (from PyPI)"
	python3 -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/python -m pip install --quiet uv

# --compile-bytecode (~40 s once): where PYTHONDONTWRITEBYTECODE is set (this machine, many
# container images) Python would otherwise recompile every module it imports in every process.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --compile-bytecode
	@touch $@

sync: .venv/.synced  ## Install the locked environment into .venv

demo: sync  ## Run the whole pipeline in embedded mode (the main job)
	$(UV) run --no-sync bridgeai demo

test: sync  ## Run every test but the cluster ones (real SeaweedFS, Postgres, Prefect, MLflow; Docker)
	$(UV) run --no-sync pytest $(PYTEST_ARGS)

test-fast: sync  ## Run the tests not marked slow
	$(UV) run --no-sync pytest -m "not slow and not cluster" $(PYTEST_ARGS)

test-cluster: sync  ## Run the cluster tests: every kind deployment on the simulated Kind cluster (Docker)
	$(UV) run --no-sync pytest -m cluster tests/cluster $(PYTEST_ARGS)

lint: sync  ## ruff (lint + format check), mypy on src/, and the import contracts (lint-imports)
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy
	$(UV) run --no-sync lint-imports

format: sync  ## Apply ruff's fixes and formatting
	$(UV) run --no-sync ruff check --fix .
	$(UV) run --no-sync ruff format .

bench: sync  ## Run every benchmark and write bench/results/summary.md
	$(UV) run --no-sync python bench/run_all.py

clean:  ## Remove the environment and local state (.venv, .tools, .bridgeai)
	rm -rf .venv .tools .bridgeai
