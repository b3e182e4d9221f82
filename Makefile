# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install, start the sandbox API and sync it into DuckDB through Dagster
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint dev bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,postgres,browser,bigquery,snowflake,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/analytics-assets demo

# Two pytest-xdist workers: most tests wait on HTTP, processes or Dagster's runs, and two share
# a 2-core machine well. The reliability suite stays in one worker (analytics_assets_tests/conftest.py).
TEST_WORKERS ?= 2

test: $(STAMP)
	RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test-fast: $(STAMP)
	RUNTIME__DLTHUB_TELEMETRY=false $(BIN)/pytest -m "not slow and not browser and not postgres" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check analytics_assets analytics_assets_tests benchmarks
	$(BIN)/ruff format --check analytics_assets analytics_assets_tests benchmarks

dev: $(STAMP)
	$(BIN)/analytics-assets dev

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Everything the project creates in its folder: the venv, the Dagster instance, the DuckDB
# warehouse (data/) and the browser test's screenshots.
clean:
	rm -rf $(VENV) .dagster_home data test-artifacts
