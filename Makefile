# The developer's entry points. Every target creates what it needs (.venv on first use).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_KNOWN_BROKEN_NODE_VERSION := 1
# jsii's end-of-life banner takes the major versions to silence (Node 20 here: synth works on it).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv lock test test-unit test-infra test-local check lint typecheck complexity coverage synth docs

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/' | sort

# The venv installs requirements.lock: every package, transitive ones included, at the version
# `make lock` resolved from the direct pins of requirements*.txt.
PIP_VERSION := 26.3
# uv installs the lock (the same pins pip would install) in parallel from its cache: on 2 cores about
# 30 s where pip took about 4 minutes, most of a fresh clone's `make test` otherwise.
UV := $(VENV)/bin/uv
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q pip==$(PIP_VERSION) "$$(grep '^uv==' requirements-dev.txt)"
	$(UV) pip install -q --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $@

venv: $(STAMP) ## create .venv and install the pinned dependencies

ENGINE_LOCK := lab/harness/requirements-engine.lock
lock: ## resolve every requirements file into requirements.lock and the engine's lock (uv, needs PyPI)
	test -x $(UV) || { test -x $(PY) || python3 -m venv $(VENV); $(PIP) install -q "$$(grep '^uv==' requirements-dev.txt)"; }
	$(UV) pip compile -q --python-version 3.11 requirements-dev.txt -o requirements.lock
	$(PY) -c 'from lab.harness.paths import RUNTIME_REQUIREMENTS as r; from lab.localcloud.engine import engine_requirements as e; print("\n".join(e(r)))' \
	  | $(UV) pip compile -q --python-version 3.11 --no-header - -o $(ENGINE_LOCK)
	@echo "requirements.lock and $(ENGINE_LOCK) written; commit them with the requirements change"

# The local tier spends most of its time waiting on the local cloud's clocks (alarm periods,
# visibility timeouts, deploys), the unit and infra tiers on the CPU: `make test` runs three streams
# side by side of about the same length on 2 cores: the deployed-stage tests, the unit tier (in one
# process, so that its timing-sensitive tests, Locust runs and paced redrives, keep a core), and the
# engine's conformance tests then the infra tier. It prints each tier's output as it ends, and runs
# every tier even when one fails (-k, and the sequence runs infra after a failed engine tier).
test: $(STAMP) $(NPM_STAMP) ## every test tier (the local one beside the others)
	@$(MAKE) --no-print-directory -k -j3 --output-sync=target UNIT_WORKERS=0 \
	  test-local-stage test-unit test-engine-and-infra

.PHONY: test-engine-and-infra
test-engine-and-infra: $(STAMP) $(NPM_STAMP)
	@status=0; $(MAKE) --no-print-directory test-local-engine || status=1; \
	  $(MAKE) --no-print-directory test-infra || status=1; exit $$status

# pytest-xdist workers of the unit tier (its tests share no port, file or session state); 0: one process.
UNIT_WORKERS ?= 2
test-unit: $(STAMP) ## functions and lab logic (moto in-process, no network)
	$(PY) -m pytest tests/unit -q -n $(UNIT_WORKERS) --durations=10

test-infra: $(STAMP) $(NPM_STAMP) ## synthesized templates: assertions, cdk-nag, cfn-lint
	$(PY) -m pytest tests/infra -q

# Two pytest processes side by side, each on its own engine (tests/local/conftest.py): the tests of
# the deployed stage, and the engine's conformance tests with the labs of their own.
LOCAL_PARTS := test-local-stage test-local-engine
.PHONY: $(LOCAL_PARTS)
test-local: $(STAMP) ## end-to-end on the local cloud (the pipeline rehearsal apart: make test-pipeline)
	@$(MAKE) --no-print-directory -k -j2 --output-sync=target $(LOCAL_PARTS)

# The deployed-stage tests wait on the local cloud's clocks far more than they compute: three
# pytest-xdist workers (10 min from a fresh clone, against 11 with two), each with its own engine and
# deployed stage (session fixtures are per worker), whole files to a worker (--dist loadfile: a
# file's drills share their stage's state).
LOCAL_STAGE_WORKERS ?= 3
test-local-stage: $(STAMP)
	$(PY) -m pytest tests/local -q -m "deployed_stage and not pipeline" -n $(LOCAL_STAGE_WORKERS) --dist loadfile \
	  --durations=10

test-local-engine: $(STAMP)
	$(PY) -m pytest tests/local -q -m "not deployed_stage and not pipeline" --durations=10

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy on the whole tree
	$(VENV)/bin/mypy $(SOURCES) tests

SOURCES := cdk_app.py app pipeline functions stage_client lab loadtest
complexity: $(STAMP) ## cyclomatic complexity gate: no function or module above C (radon rank, <= 20), average A
	$(VENV)/bin/xenon --max-absolute C --max-modules C --max-average A $(SOURCES)
	@$(VENV)/bin/radon cc -s -n C --total-average $(SOURCES) | tail -1

coverage: $(STAMP) ## unit and infra tiers with line coverage of the sources (the local tier runs code in the engine)
	$(PY) -m pytest tests/unit tests/infra -q $(addprefix --cov=,$(subst cdk_app.py,cdk_app,$(SOURCES))) \
	  --cov-report=term:skip-covered --cov-report=html:reports/coverage

check: lint typecheck complexity coverage test-local ## lint, types, complexity, every test tier with coverage

# Through the pinned CDK CLI, as the pipeline's synth step runs it: with cdk.context.json (the real
# accounts, the prod JWT issuer); CDK_ARGS adds context, e.g. CDK_ARGS="-c allowExampleJwtIssuer=true".
synth: $(STAMP) $(NPM_STAMP) ## synthesize the app (every stage and the pipeline) into cdk.out
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet $(CDK_ARGS)

docs: $(STAMP) ## regenerate the configuration tables of docs/configuration.md from the configuration models
	$(PY) -m app.config.doc docs/configuration.md

.PHONY: loadtest
loadtest: $(STAMP) ## Locust (throughput + duplicate submit) on the local cloud for 30 s, then the gate
	$(PY) -m loadtest --target local --users 4 --spawn-rate 4 --run-time 30s

.PHONY: gameday
gameday: $(STAMP) ## one automated drill on the local lab (make gameday DRILL=poison-pill; see `lab gameday -h`)
	$(VENV)/bin/lab gameday $(or $(DRILL),poison-pill)

# --- Local cloud (lab/localcloud + lab/harness): the real stage on an embedded AWS on 127.0.0.1 ------
$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: lab lab-down lab-status bench
LAB_STATE_DIR ?= .lab
lab: $(STAMP) $(NPM_STAMP) ## start the local cloud, deploy the stage, send sample events, run the poison-pill drill, leave it running
	$(PY) -m lab.harness up --no-summary
	$(PY) -m lab.harness demo
	@# The drill runs once per deployment: a second `make lab` on the same deployment stays fast.
	@if cmp -s $(LAB_STATE_DIR)/deploy.json $(LAB_STATE_DIR)/poison-pill.passed; then \
	  echo "poison-pill drill already passed on this deployment (reports/); again: make gameday DRILL=poison-pill"; \
	else \
	  $(VENV)/bin/lab gameday poison-pill && cp $(LAB_STATE_DIR)/deploy.json $(LAB_STATE_DIR)/poison-pill.passed; \
	fi
	$(PY) -m lab.harness summary

lab-down: $(STAMP) ## stop the local cloud (engine, agent) started by `make lab`
	$(PY) -m lab.harness down

lab-status: $(STAMP) ## engine, agent and alarm states of the local cloud
	$(PY) -m lab.harness status

bench: $(STAMP) $(NPM_STAMP) ## local figures: end-to-end events/s, ingest p50/p95 (Locust), drain rate, raw SendMessage rate
	$(PY) -m lab.harness.bench

# --- The pipeline rehearsal (lab/rehearsal on lab/localcloud/codepipeline) ------------------------
.PHONY: pipeline test-pipeline budgets
pipeline: $(STAMP) $(NPM_STAMP) ## rehearse the delivery pipeline on the local cloud from the committed HEAD (APPROVE=1: approve prod unattended)
	$(VENV)/bin/lab pipeline run $(if $(filter 1 true yes,$(APPROVE)),--approve)

test-pipeline: $(STAMP) $(NPM_STAMP) ## the pipeline rehearsal's end-to-end tests, on a local cloud of their own (about 16 minutes on 2 cores)
	$(PY) -m pytest tests/local/pipeline -q -m pipeline

# The budgets read the stages' timings, not prod's identity provider: cdk.json's example issuer is
# allowed here, so that the table needs no real context.
budgets: $(STAMP) $(NPM_STAMP) ## each post-deploy step's worst case against its CodeBuild timeout, for dev and prod
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet -c allowExampleJwtIssuer=true $(CDK_ARGS)
	$(VENV)/bin/lab pipeline budgets --assembly cdk.out
