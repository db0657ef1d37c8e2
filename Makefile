# Two commands on a fresh machine: `make run` (the demo) and `make test` (everything CI runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PostgreSQL tests run against this server; CI sets HEALTHGRAPH_REQUIRE_POSTGRES=1 so they
# fail rather than skip when it is missing.
export HEALTHGRAPH_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test lint typecheck unit prometheus-tools clean

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "healthgraph needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed-run: pyproject.toml $(VENV)/.python-ok
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.python-ok
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/healthgraph serve --demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench tools grafana
	$(BIN)/ruff format --check src tests bench tools grafana
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# promtool, prometheus, amtool and alertmanager: installed with apt when missing and possible,
# otherwise the script says exactly what to install and make stops.
prometheus-tools:
	@scripts/install-prometheus-tools.sh

# Two workers, each taking whole files (their fixtures and timing-sensitive tests stay
# together): on a 2-core machine the suite went 14 min -> 7.5 min. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
unit: $(VENV)/.installed-dev prometheus-tools
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
