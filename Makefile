# The two commands a user needs (see README.md):
#   make demo   set up .venv and run the demo sweep end to end on the embedded local backend
#   make test   set up .venv, check style and types, start the personal HTCondor pool, run the whole test suite, stop the pool
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# the environment tarballs of this checkout stay in envs/cache (sweep's own default is ~/.cache/sweep/envs)
export SWEEP_ENV_CACHE_DIR := $(CURDIR)/envs/cache

.PHONY: setup demo test pool-up pool-down lint lock lock-job lock-dev

# The hashed lock first (pip refuses anything unpinned or unhashed; it holds pip itself and what
# `.[all]` needs), then sweep alone: no dependencies (the lock has them), no build isolation (the lock
# has setuptools, so nothing unhashed is fetched to build it).
$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/sweep demo

test: setup
	./scripts/run-tests

# the personal HTCondor pool for tests (docs/personal-pool.md); make test starts and stops it itself
pool-up:
	./scripts/personal-pool up

pool-down:
	./scripts/personal-pool down

# Regenerate a hashed lock after editing its .in file (envs/README.md); pins already in the lock are
# kept unless UV_ARGS says otherwise: UV_ARGS=--upgrade, UV_ARGS='--upgrade-package numpy'
lock-job: setup
	scripts/lock job $(UV_ARGS)

lock-dev: setup
	scripts/lock dev $(UV_ARGS)

# both, the job's first: the development lock is held to its versions
lock: setup
	scripts/lock job $(UV_ARGS)
	scripts/lock dev $(UV_ARGS)

lint: setup
	$(VENV)/bin/ruff check sweep analysis tests benchmarks
	$(VENV)/bin/ruff format --check sweep analysis tests benchmarks
	$(VENV)/bin/mypy
