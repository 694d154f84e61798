# The two commands a user needs (see README.md):
#   make demo   set up .venv and run the demo sweep end to end on the embedded local backend
#   make test   set up .venv, start the personal HTCondor pool, run the whole test suite, stop the pool
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test pool-up pool-down lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all]'
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

lint: setup
	$(VENV)/bin/ruff check sweep analysis tests benchmarks
