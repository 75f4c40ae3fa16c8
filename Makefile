# DEX: the two newcomer commands are `make local` (set up, then run the whole platform loop on
# the embedded defaults: `dex local up`) and `make test` (set up, then lint, type-check and
# test). CI runs the same `make test` through .ci/run.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dex-installed

.PHONY: setup local plan test lint typecheck imports unit snapshots bench clean lock promtool checkov lock-checkov

# uv (pinned in the lock) installs the lock's exact pins in seconds; pip only bootstraps it.
UV_PIN = $$(sed -n 's/^uv==//p' requirements.lock)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "DEX needs Python 3.11 or newer, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_PIN)"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

# Re-resolve pyproject.toml's dependencies in a scratch venv and pin the result.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet -e '.[dev]'
	{ head -3 requirements.lock; .venv-lock/bin/python -m pip freeze --exclude-editable; } > requirements.lock.new
	mv requirements.lock.new requirements.lock && rm -rf .venv-lock

setup: $(STAMP)

# Checkov (`dex policy check --with checkov`) pins its own boto3 and ~90 other packages, so it
# lives in its own venv, installed exactly from requirements-checkov.lock.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.dex-installed

$(CHECKOV_STAMP): requirements-checkov.lock $(STAMP)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(BIN)/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python -r requirements-checkov.lock
	@touch $@

checkov: $(CHECKOV_STAMP)

lock-checkov:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet "checkov==$$(sed -n 's/^checkov==//p' requirements-checkov.lock)"
	{ head -3 requirements-checkov.lock; .venv-lock/bin/python -m pip freeze; } > requirements-checkov.lock.new
	mv requirements-checkov.lock.new requirements-checkov.lock && rm -rf .venv-lock

local: setup
	$(BIN)/dex local up

plan: setup
	$(BIN)/dex plan dev

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup promtool checkov
	$(BIN)/pytest -m unit

# promtool checks the alert rules and dashboard queries (tests/unit/test_rules.py): Debian's
# `prometheus` package ships it. Installed once when missing (as root, or through sudo).
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing promtool (Debian package prometheus)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends prometheus >/dev/null \
	    || { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends prometheus >/dev/null; }; }
	@promtool --version | head -1

# the import arrows between packages: [tool.importlinter] in pyproject.toml
imports: setup
	$(BIN)/lint-imports

# The suite on every core, each test file on one worker (its module fixtures stay together), in
# collection order: files with slow tests first (tests/conftest.py), not xdist's default of the
# files with the most tests first, which left the long integration runs for the end. Tests that
# share the machine's Postgres and Redis use their own databases and keys.
PYTEST_WORKERS ?= auto

test: lint typecheck imports promtool checkov
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

snapshots: setup
	DEX_UPDATE_SNAPSHOTS=1 $(BIN)/pytest tests/unit/test_snapshots.py -q
	git diff --stat tests/snapshots

bench: setup
	$(BIN)/python benchmarks/synth.py
	$(BIN)/python benchmarks/policy.py
	$(BIN)/python benchmarks/pipeline.py --sizes 1000000

clean:
	rm -rf $(VENV) .venv-airflow .venv-checkov .mypy_cache .ruff_cache .pytest_cache .dex
