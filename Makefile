# Every target sets up its own virtual environment, so a newcomer needs only python3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.davsync-installed

.PHONY: demo test check unit bench clean system-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: local Radicale + local S3 on loopback, sample data, two syncs and a backup/restore
demo: $(STAMP)
	$(BIN)/davsync demo

## check: lint and type-check
check: $(STAMP)
	$(BIN)/ruff check davsync tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## system-tools: Debian tools the tests use (systemd-analyze), installed when missing and root
system-tools:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; \
	  else echo "make test needs systemd-analyze: install the Debian package systemd" >&2; exit 2; fi; }

## test: the whole suite (lint, types, unit and integration tests against real servers)
test: check system-tools
	$(BIN)/pytest -n 2 -q

## unit: only the fast pure-logic tests
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## bench: the sync and backup benchmarks (installs peers into their own environments)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) demo-run .pytest_cache .mypy_cache .ruff_cache
