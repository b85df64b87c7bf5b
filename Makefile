# Every target sets up its own virtual environment, so a newcomer needs only python3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.davsync-installed

.PHONY: demo test check unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: local Radicale + local S3 on loopback, sample data, two syncs and a backup/restore
demo: $(STAMP)
	$(BIN)/python -m davsync.demo

## check: lint and type-check
check: $(STAMP)
	$(BIN)/ruff check davsync tests benchmarks
	$(BIN)/mypy

## test: the whole suite (lint, types, unit and integration tests against real servers)
test: check
	$(BIN)/pytest -n 2 -q

## unit: only the fast pure-logic tests
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## bench: the sync and backup benchmarks (installs peers into their own environments)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache
