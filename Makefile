# Two commands on a fresh machine: `make run` and `make test`. Both create .venv on first use;
# `make run` installs what serving needs and nothing else, `make test` the dev extra (the test,
# benchmark and cluster tools) too.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: run run-cluster test lint typecheck pytest bench loadtest soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/concert-queue serve

# The same service as a cluster on Ray (needs PostgreSQL and Redis running: see the README).
CLUSTER_STAMP := $(VENV)/.installed-cluster
$(CLUSTER_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cluster]'
	touch $(CLUSTER_STAMP)

run-cluster: $(CLUSTER_STAMP)
	$(BIN)/concert-queue serve --cluster

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# Every benchmark, then loadtests/results/REPORT.md (a few minutes; loads 127.0.0.1 only).
bench: $(STAMP)
	$(BIN)/python -m loadtests.bench_engine
	if [ -f loadtests/bench_journal.py ]; then $(BIN)/python -m loadtests.bench_journal; fi
	$(BIN)/python -m loadtests.bench_http
	$(BIN)/python -m loadtests.bench_ws
	$(BIN)/python -m loadtests.bench_rooms
	$(BIN)/python -m loadtests.bench_cluster
	$(BIN)/python -m loadtests.report

# Locust for LOADTEST_DURATION seconds on a temporary server, then the audit; against a running
# server: make loadtest LOADTEST_HOST=http://127.0.0.1:8000 ADMIN_TOKEN=...
LOADTEST_DURATION ?= 60
LOADTEST_USERS ?= 120
loadtest: $(STAMP)
	$(BIN)/python -m loadtests.loadtest --duration $(LOADTEST_DURATION) \
		--users $(LOADTEST_USERS) $(if $(LOADTEST_HOST),--host $(LOADTEST_HOST))

# SIGKILL under a full-flow load once a cycle, restart, audit: zero violations is the pass.
# make soak SOAK_CYCLES=20 SOAK_SECONDS=60 SOAK_DATABASE=postgresql (DATABASE_URL_TEST's server)
SOAK_CYCLES ?= 5
SOAK_SECONDS ?= 30
SOAK_DATABASE ?= sqlite
soak: $(STAMP)
	$(BIN)/python -m loadtests.soak --cycles $(SOAK_CYCLES) --seconds $(SOAK_SECONDS) \
		--database $(SOAK_DATABASE)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
