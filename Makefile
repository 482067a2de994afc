# The two commands of the README: `make demo` and `make test`. Each sets itself up
# (virtualenv + pinned install) on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint setup clean

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

## Run the whole pipeline end to end on the embedded PostgreSQL and print where results are.
demo: $(STAMP)
	$(BIN)/winback demo

lint: $(STAMP)
	$(BIN)/ruff check include dags tests bench
	$(BIN)/sqlfluff lint dbt_project --processes 2

## Lint, then the whole test suite (unit, dbt, integration against PostgreSQL, DAG runs,
## the report in a real headless Chromium, installed from the OS packages when missing).
test: lint
	bash tests/e2e/ensure_chromium.sh
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; fi; exit $$rc

clean:
	rm -rf .winback dbt_project/target dbt_project/logs
