# Entry points for a fresh machine: `make demo`, `make test` and `make bench`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
JS_PEER := tests/interop/js
JS_STAMP := $(JS_PEER)/node_modules/.installed

.PHONY: demo test lint typecheck unit integration bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# The official JS SDK, a test peer for the interop tests (exact versions from the lockfile).
$(JS_STAMP): $(JS_PEER)/package.json $(JS_PEER)/package-lock.json
	npm ci --prefix $(JS_PEER) --no-audit --no-fund --loglevel=error
	touch $@

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

# pytest-xdist workers: most tests wait on real servers rather than the CPU, so a 2-core
# machine runs 4 best (measured on the integration tests: 2 workers 117 s, 4 81 s, 6 98 s).
# Tests that use PostgreSQL need it at 127.0.0.1:5432 (or STEPWISE_TEST_POSTGRES);
# `.ci/run` starts it.
PYTEST_WORKERS ?= 4

test: $(STAMP) $(JS_STAMP) lint typecheck
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

# The short peers run (bench/README.md has the full one). It installs each peer into a
# virtualenv of its own under bench/.peers-venv/ and needs PostgreSQL and Redis on 127.0.0.1.
BENCH_EVENTS ?= 200

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/peers/run.py --events $(BENCH_EVENTS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(JS_PEER)/node_modules bench/.peers-venv
