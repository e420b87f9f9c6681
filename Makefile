# Market Map — one entry point. `make demo` runs the demo client's initial build through
# Airflow; `make test` runs the whole test suite; `make ui` starts the Airflow UI.
# Each target creates .venv and installs the pinned requirements on first use only.

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Project-local Airflow home and warehouse (the embedded default: SQLite, no credentials).
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export MARKETMAP_HOME ?= $(AIRFLOW_HOME)/marketmap
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := True
export AIRFLOW__CORE__UNIT_TEST_MODE := False
# The UI's port; alert and report links, and the tasks' execution API, follow it (`make ui PORT=8090`).
PORT ?= 8080
export AIRFLOW__API__PORT ?= $(PORT)
export AIRFLOW__API__BASE_URL ?= http://localhost:$(PORT)
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL ?= http://localhost:$(PORT)/execution/
# Auth manager of `make ui`: the SimpleAuthManager (every user sees every client), or with
# `make ui AUTH=fab` (or MARKETMAP_AUTH=fab) the FAB auth manager with one role per client.
AUTH ?= $(MARKETMAP_AUTH)
ifeq ($(AUTH),fab)
export MARKETMAP_AUTH := fab
export AIRFLOW__CORE__AUTH_MANAGER := airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
endif
# A 2-core laptop does not need 32 idle LocalExecutor workers.
export AIRFLOW__CORE__PARALLELISM ?= 4
# Airflow's SQLite metadata DB: wait for locks instead of failing after 5 s (see marketmap.settings).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS ?= marketmap.settings.AIRFLOW_SQLITE_CONNECT_ARGS

.PHONY: install demo test lint ui bench pools migrate clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/marketmap demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff check --preview --select AIR dags include plugins
	@# Debian's chromium for the browser test (never a downloaded browser); required in CI.
	bash scripts/install-browser.sh || test -z "$$CI"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff check --preview --select AIR dags include plugins

ui: $(STAMP)
	$(BIN)/marketmap demo-data
	@# Deploy-time migration (Airflow's DB when needed, every client warehouse): the tasks only check.
	$(BIN)/marketmap migrate
	@# pools first: a task in a pool that does not exist is never scheduled
	$(BIN)/marketmap pools --apply
ifeq ($(AUTH),fab)
	PATH="$(BIN):$$PATH" BIN="$(BIN)" PORT="$(PORT)" bash scripts/ui-fab.sh
else
	@echo "Airflow UI: http://localhost:$(PORT) — the admin password is printed below and kept in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	PATH="$(BIN):$$PATH" $(BIN)/airflow standalone
endif

bench: $(STAMP)
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_dag_parse.py
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_scoring.py
	$(BIN)/python bench/bench_enrichment.py
	$(BIN)/python bench/bench_crm_push.py
	$(BIN)/python bench/bench_territories.py
	$(BIN)/python bench/bench_monthly.py

pools: $(STAMP)
	$(BIN)/marketmap pools --apply

# Airflow's metadata DB (once per Airflow version and database) and every client's warehouse.
migrate: $(STAMP)
	$(BIN)/marketmap migrate

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME)
