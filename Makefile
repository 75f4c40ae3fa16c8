# DEX: the two newcomer commands are `make plan` (set up, then run the main job on the
# embedded defaults) and `make test` (set up, then lint, type-check and test). CI runs the
# same `make test` through .ci/run.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dex-installed

.PHONY: setup plan test lint typecheck unit snapshots bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "DEX needs Python 3.11 or newer, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(STAMP)

plan: setup
	$(BIN)/dex plan dev

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m unit

test: lint typecheck
	$(BIN)/pytest

snapshots: setup
	DEX_UPDATE_SNAPSHOTS=1 $(BIN)/pytest tests/unit/test_snapshots.py -q
	git diff --stat tests/snapshots

bench: setup
	$(BIN)/python benchmarks/synth.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
