# The two commands of the README: `make demo` and `make test`. Each sets itself up
# (virtualenv + pinned install + the dbt manifest) on a fresh machine with Python 3.11.
# Beside them, `make airflow` runs the DAGs under a real scheduler (README: Run it under Airflow).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The dbt manifest the Cosmos DAGs render from: without it a fresh clone's dbt DAGs do not import.
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) \
               $(wildcard dbt_project/*.yml)
# make airflow EXECUTOR=celery: CeleryExecutor on the Redis at 127.0.0.1:6379 (PORT: the UI's port).
# PG_PORT=5433: also open the embedded PostgreSQL on 127.0.0.1:5433 for BI tools (SCRAM only).
EXECUTOR ?= local
PORT     ?= 8080
PG_PORT  ?=

.PHONY: demo test lint setup clean airflow

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(MANIFEST): $(STAMP) $(DBT_SOURCES)
	$(BIN)/python -c "from winback import dbt; dbt.build_manifest()"
	touch $(MANIFEST)

setup: $(STAMP) $(MANIFEST)

## Run the whole pipeline end to end on the embedded PostgreSQL and print where results are.
demo: $(STAMP) $(MANIFEST)
	$(BIN)/winback demo

## A local Airflow deployment: scheduler, DAG processor, triggerer and the UI/API on
## http://127.0.0.1:$(PORT), the embedded warehouse kept up while it runs. Ctrl-C stops it all.
airflow: $(STAMP) $(MANIFEST)
	$(BIN)/python -m winback.deployment --executor $(EXECUTOR) --port $(PORT) $(if $(PG_PORT),--pg-port $(PG_PORT))

lint: $(STAMP)
	$(BIN)/ruff check include dags tests bench
	$(BIN)/sqlfluff lint dbt_project --processes 2

## Lint, then the whole test suite (unit, dbt, integration against PostgreSQL, DAG runs,
## the report in a real headless Chromium, installed from the OS packages when missing).
test: lint $(MANIFEST)
	bash tests/e2e/ensure_chromium.sh
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; fi; exit $$rc

clean:
	rm -rf .winback dbt_project/target dbt_project/logs
