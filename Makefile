# AWS-MLOps: every command users, CI and outside checks rely on.
# Only Python 3.11, Node 20, npm and git are assumed; `make install` sets up the rest.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SCAN_VENV := .venv-scan
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
CONFIG_DIR ?= config

# Offline and quiet: no CLI telemetry or notices, no instance-metadata probing.
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_EC2_METADATA_DISABLED := true
# The CDK CLI and the CDK app's jsii runtime run on the Node.js LTS pinned in package.json (npm's
# `node` package), not on whatever Node is installed: .nvmrc says the same for nvm users.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install synth pipeline-definition test scan audit demo bench clean ls deploy diff destroy require-env

help:
	@echo "make install   create .venv, .venv-scan and node_modules (idempotent)"
	@echo "make synth     synthesize every environment into cdk.out/ behind the compliance gate"
	@echo "make pipeline-definition  each environment's SageMaker Pipelines (build, batch) JSON into cdk.out/pipelines/, offline"
	@echo "make test      unit, infra and integration tests, determinism, cfn-lint, checkov"
	@echo "make audit     after synth: build/audit/<env>/ index.html, report.md, findings.sarif (BASELINE=old/build/audit to compare)"
	@echo "make demo      install, synthesize every environment behind the compliance gate and summarize it, train on the sample data, serve the model and send it requests, then run the whole loop offline (train, register, approve, deploy, drift, retrain, redeploy; build/demo/loop.png)"
	@echo "make bench     run the benchmarks in bench/ (serving and soak need wrk; monitor sets up .venv-bench)"
	@echo "make ls ENV=dev       list one environment's stacks (offline; without ENV: every environment's)"
	@echo "make diff ENV=dev     compare one environment with what is deployed (needs AWS credentials)"
	@echo "make deploy ENV=dev   deploy one environment's stacks (needs AWS credentials)"
	@echo "make destroy ENV=dev  delete one environment's stacks, after a confirmation (needs AWS credentials)"
	@echo "                      all four take CONFIG_DIR=config/examples/multi-account and CDK_ARGS='...'"

install: $(VENV)/.installed $(SCAN_VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-tests.txt requirements-audit.txt ml_code/requirements.txt pipelines/requirements.txt lambdas/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Scanners pin many transitive packages; their own venv keeps them off the app's pins.
$(SCAN_VENV)/.installed: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-fund --no-audit --loglevel=error
	touch $@

# The CLI judges cdk-nag's report only for the stacks it selected, and without a selector it selects the
# top-level stacks: none, since every stack sits in its environment's Stage. '*/*' selects them all.
synth: install
	rm -rf cdk.out
	$(CDK) synth --no-notices --quiet -c config_dir=$(CONFIG_DIR) '*/*' > /dev/null

# The SageMaker SDK builds the definitions with no network: no credentials, no S3, no telemetry.
pipeline-definition: install
	$(PY) -m pipelines.run --config-dir $(CONFIG_DIR) --definitions-out cdk.out/pipelines
	$(PY) -m pipelines.batch --config-dir $(CONFIG_DIR) --definitions-out cdk.out/pipelines

test: install synth
	$(MAKE) --no-print-directory pipeline-definition
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest
	$(MAKE) --no-print-directory scan

# cfn-lint and checkov over the cdk.out that `synth` wrote, and checkov over the Dockerfiles.
scan:
	$(SCAN_VENV)/bin/cfn-lint
	$(SCAN_VENV)/bin/checkov --config-file .checkov.yaml -d cdk.out
	@if [ -d ml_code/containers ]; then $(SCAN_VENV)/bin/checkov --config-file .checkov.yaml -d ml_code/containers; fi

# The auditor's report of every environment that `make synth` wrote: offline, no AWS credentials.
# The diagram needs Graphviz's dot (installed from Debian where we are root, as in CI); the
# encryption section reads the pipeline definitions, written here if synth removed them.
BASELINE ?=
audit: install
	@command -v dot > /dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz > /dev/null; \
	  else echo "make audit needs Graphviz's dot: apt-get install graphviz (Debian) or brew install graphviz"; exit 2; fi; }
	@test -f cdk.out/manifest.json || { echo "error: cdk.out holds no cloud assembly: run make synth first"; exit 2; }
	@test -d cdk.out/pipelines || $(MAKE) --no-print-directory pipeline-definition > /dev/null
	$(PY) -m tools.audit --cdk-out cdk.out --output build/audit $(if $(BASELINE),--baseline $(BASELINE))

demo: synth
	@$(MAKE) --no-print-directory pipeline-definition > /dev/null
	@echo "== what make synth built (cdk.out)"
	@$(PY) -m tools.assembly_summary cdk.out
	@echo
	@$(PY) -m tools.ml_demo --output build/demo
	@echo
	@$(PY) -m tools.demo --output build/demo

bench: install
	@command -v wrk > /dev/null || { echo "bench/serving.py and bench/soak.py need wrk (Debian: apt-get install wrk)"; exit 2; }
	@test -x .venv-bench/bin/python || bash bench/setup_bench_venv.sh
	$(PY) bench/synth_time.py
	$(PY) bench/model_quality.py
	$(PY) bench/serving.py --capture
	$(PY) bench/soak.py
	$(PY) bench/per_row_timings.py
	$(PY) bench/training_cost.py
	$(PY) bench/large_training.py
	$(PY) bench/monitor.py

clean:
	rm -rf cdk.out build .pytest_cache

# --- one environment through the pinned CLI ----------------------------------------------------------
# Every stack sits inside its environment's Stage, so the CLI selects them with '<env>/*' (`--all` only sees
# top-level stacks and finds none). -c env also keeps the app from building the other environments.
ENV ?=
CDK_ARGS ?=
CDK_ENV = $(CDK) --no-notices -c config_dir=$(CONFIG_DIR) $(if $(ENV),-c env=$(ENV))
SELECTOR = '$(if $(ENV),$(ENV),*)/*'

# Without credentials `cdk diff` compares against nothing and reports "0 differences": ask STS first.
define CHECK_CREDENTIALS
import sys
from pathlib import Path
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from stacks.config import ConfigError, load_environments
try:
    (config,) = load_environments(Path("$(CONFIG_DIR)"), "$(ENV)")
except ConfigError as exc:
    sys.exit(f"error: {exc}")
try:
    sts = boto3.client("sts", region_name=config.region, config=Config(connect_timeout=5, retries={"max_attempts": 2}))
    arn = sts.get_caller_identity()["Arn"]
except (BotoCoreError, ClientError) as exc:
    sys.exit(f"error: make {sys.argv[1]} ENV=$(ENV) needs AWS credentials (for account {config.account} or one it trusts), "
             f"and none work: {exc}")
print(f"{config.name}: account {config.account}, region {config.region}, as {arn}")
endef
export CHECK_CREDENTIALS

require-env:
	@test -n "$(ENV)" || { echo "error: ENV is required, e.g. make $(MAKECMDGOALS) ENV=dev (one of: $$(ls $(CONFIG_DIR)/*.yaml 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.yaml$$//' | tr '\n' ' '))" >&2; exit 2; }

ls: install
	$(CDK_ENV) ls $(CDK_ARGS) $(SELECTOR)

diff deploy destroy: install require-env
	@$(PY) -c "$$CHECK_CREDENTIALS" $@
	$(CDK_ENV) $@ $(CDK_ARGS) $(SELECTOR)
