# Sparring. Quick start: `make run` (the app) and `make test` (the suite).
# Each target installs what it needs into .venv first and is safe to run again.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
ADDRESS ?= 127.0.0.1
WORKERS ?= 4

.PHONY: run worker test test-reliability test-all test-fast lint typecheck bench clean-data help

help:
	@echo "make run      start the app (embedded mode unless REDIS_URL is set) on http://$(ADDRESS):$(PORT) (this machine only)"
	@echo "make worker   start a queue worker (needs REDIS_URL), WORKERS=$(WORKERS) threads"
	@echo "make test     run the test suite (starts redis-server if none answers)"
	@echo "make test-reliability  the reliability scenarios (crashes, outages, faults, soak); CI runs both"
	@echo "make lint     ruff check, ruff format --check, mypy (sparring, jobs, ui); CI runs it first"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.deps-run: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.deps-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $(VENV)/.deps-run $@

run: $(VENV)/.deps-run
	$(BIN)/python -m sparring serve --port $(PORT) --address $(ADDRESS)

worker: $(VENV)/.deps-run
	$(BIN)/python -m jobs.worker --workers $(WORKERS)

test: $(VENV)/.deps-test
	scripts/ensure-chromium
	scripts/with-redis $(BIN)/python -m pytest -m "not reliability" $(PYTEST_ARGS)

test-reliability: $(VENV)/.deps-test
	scripts/ensure-chromium
	scripts/with-redis $(BIN)/python -m pytest -m reliability -s $(PYTEST_ARGS)

test-all: test test-reliability

test-fast: $(VENV)/.deps-test
	scripts/with-redis $(BIN)/python -m pytest -m "not slow and not browser and not reliability" $(PYTEST_ARGS)

lint: $(VENV)/.deps-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(VENV)/.deps-test
	$(BIN)/mypy

bench: $(VENV)/.deps-test
	scripts/with-redis $(BIN)/python -m bench

clean-data:
	rm -rf data/sparring.duckdb data/sparring.duckdb.wal data/queue.sqlite3*
