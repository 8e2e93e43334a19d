# One entry point for every task; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_VENV := .local/runtime-venv
# The benchmark's servers run on the image's Python (3.13, Dockerfile) when this
# machine runs it (on PATH or from pyenv), else on $(PYTHON): the report says which.
RUNTIME_PYTHON ?= $(or $(shell for p in python3.13 $(HOME)/.pyenv/versions/3.13*/bin/python3.13; do $$p -c '' 2>/dev/null && { echo $$p; break; }; done),$(PYTHON))
COMPOSE ?= docker compose

.PHONY: help
help: ## List the targets
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-12s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(BIN)/python: requirements.txt requirements-dev.txt tests/stack/requirements.txt bench/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

# The OpenID provider the tests sign in against (tests/oidc/provider.mjs): the
# lockfile's exact packages, installed again when package.json or the lockfile change.
OIDC_PROVIDER := tests/oidc/node_modules/.installed
$(OIDC_PROVIDER): tests/oidc/package.json tests/oidc/package-lock.json
	cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# promtool, which checks and unit-tests prometheus/ (tests/observability): the one
# binary from Debian's `prometheus` package, unpacked here. Installing the package
# would also start a Prometheus server on this machine.
PROMTOOL := .local/tools/promtool
$(PROMTOOL):
	rm -rf $(@D)/prometheus-deb && mkdir -p $(@D)/prometheus-deb
	cd $(@D)/prometheus-deb && { apt-get download prometheus 2>/dev/null \
		|| { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x $(@D)/prometheus-deb/prometheus_*.deb $(@D)/prometheus-deb/root
	install -m 0755 $(@D)/prometheus-deb/root/usr/bin/promtool $@
	rm -rf $(@D)/prometheus-deb

.PHONY: install
install: $(BIN)/python $(OIDC_PROVIDER) $(PROMTOOL) ## Create .venv with the app and its dev tools, the tests' OpenID provider and promtool

.env:
	$(PYTHON) scripts/init_env.py

# --- Local development (no Docker) ---------------------------------------------
.PHONY: dev
dev: install .env ## Run the API on http://127.0.0.1:8000 with reload (embedded Postgres if none answers)
	$(BIN)/python -m app.main

# One pytest worker per CPU (pytest-xdist), each with its own embedded Postgres:
# the suite is ~1.8x faster on 2 cores. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= logical

.PHONY: test
test: install test-tools ## Run the app's test suite against a real (embedded) Postgres
	$(BIN)/pytest tests --ignore=tests/stack --numprocesses=$(TEST_WORKERS)

# PgBouncer, Debian's package, for tests/database/test_pgbouncer.py (the suite
# starts its own). Installing needs root; without it those tests fail, saying so.
.PHONY: test-tools
test-tools:
	@test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null; \
		else echo "pgbouncer is missing (sudo apt-get install pgbouncer): its tests will fail"; fi; }

.PHONY: lint
lint: install ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: settings
settings: install ## Write .env.example and docs/settings.md from the settings' declaration (app/settings/)
	$(BIN)/python -m devtools.settings_files

.PHONY: fmt
fmt: install ## Format and auto-fix with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# --- Benchmark (bench/; not a test: targets are reported, never fail the build) ----
.PHONY: bench
bench: install bench-tools $(RUNTIME_VENV)/bin/gunicorn ## App vs a raw ASGI baseline (and vs itself without metrics) under wrk, then the lists at 10M items (~10 min; the first data load ~15-30 min more)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.scale $(BENCH_SCALE_ARGS)

.PHONY: bench-scale
bench-scale: install $(RUNTIME_VENV)/bin/gunicorn ## Only the lists at data scale: 10M items kept in .local/bench-scale/ between runs
	$(BIN)/python -m bench.scale $(BENCH_SCALE_ARGS)

.PHONY: bench-smoke
bench-smoke: install bench-tools $(RUNTIME_VENV)/bin/gunicorn ## The benchmark's harness end to end in seconds (one short run each)
	$(BIN)/python -m bench --smoke
	$(BIN)/python -m bench.scale --smoke

# The benchmark's servers run from requirements.txt alone, as in the image.
$(RUNTIME_VENV)/bin/gunicorn: requirements.txt .local/runtime-python
	rm -rf $(RUNTIME_VENV)
	$(RUNTIME_PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

# Rewritten only when the interpreter changes, which rebuilds the venv.
.local/runtime-python: FORCE
	@mkdir -p .local; echo '$(RUNTIME_PYTHON)' | cmp -s - $@ || echo '$(RUNTIME_PYTHON)' > $@

.PHONY: FORCE
FORCE:

.PHONY: bench-stack
bench-stack: install bench-tools ## S6: S1 through Traefik over HTTPS vs direct, in the compose stack (root)
	$(BIN)/python -m bench.stack $(BENCH_ARGS)

# wrk is Debian's package (installing needs root, as `make test-stack` does).
.PHONY: bench-tools
bench-tools:
	@command -v wrk >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }

# --- The compose stack ---------------------------------------------------------
.PHONY: up
up: .env ## Build and start the stack, wait until healthy, print the URL
	scripts/stack.sh up

.PHONY: down
down: ## Stop the stack (data stays in its volumes)
	$(COMPOSE) down

.PHONY: logs
logs: ## Follow the stack's logs
	$(COMPOSE) logs -f --tail=200

.PHONY: ps
ps: ## Show the stack's services and their health
	$(COMPOSE) ps

.PHONY: migrate
migrate: ## Apply database migrations (in the running stack, else on the local database)
	scripts/stack.sh migrate

.PHONY: superuser
superuser: ## Create the first superuser from .env if it does not exist
	scripts/stack.sh superuser

.PHONY: trust-ca
trust-ca: ## Trust the local CA in Chrome/Chromium on Linux (creates its NSS database if missing)
	scripts/stack.sh trust-ca

.PHONY: backup
backup: ## Dump the stack's database to backups/<timestamp>.dump
	scripts/stack.sh backup

.PHONY: restore
restore: ## Restore the stack's database: make restore FILE=backups/<file>.dump
	scripts/stack.sh restore "$(FILE)"

.PHONY: deploy
deploy: ## Deploy with compose to the current docker context (what CI's deploy job runs)
	scripts/deploy.sh

.PHONY: deploy-swarm
deploy-swarm: ## Deploy (or roll out a new release) on Docker Swarm: compose.yaml + compose.swarm.yaml
	scripts/swarm.sh deploy

.PHONY: swarm-ps
swarm-ps: ## Show the swarm stack's services and tasks
	scripts/swarm.sh ps

.PHONY: swarm-down
swarm-down: ## Remove the swarm stack (its volumes stay)
	scripts/swarm.sh down

.PHONY: test-stack
test-stack: install ## End-to-end: real engine, Traefik, ACME CA, Postgres and Chromium
	scripts/test-stack.sh
