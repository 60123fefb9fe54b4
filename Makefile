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

# Offline and quiet: no CLI telemetry or notices, no instance-metadata probing, no Node EOL banner.
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_EC2_METADATA_DISABLED := true
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install synth pipeline-definition test scan audit demo bench clean

help:
	@echo "make install   create .venv, .venv-scan and node_modules (idempotent)"
	@echo "make synth     synthesize every environment into cdk.out/ behind the compliance gate"
	@echo "make pipeline-definition  each environment's SageMaker Pipeline JSON into cdk.out/pipelines/, offline"
	@echo "make test      unit, infra and integration tests, determinism, cfn-lint, checkov"
	@echo "make audit     after synth: build/audit/<env>/ index.html, report.md, findings.sarif (BASELINE=old/build/audit to compare)"
	@echo "make demo      install, synth, and print what was built"
	@echo "make bench     run the benchmarks in bench/"

install: $(VENV)/.installed $(SCAN_VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-tests.txt requirements-audit.txt ml_code/requirements.txt ml_code/pipelines/requirements.txt lambdas/requirements.txt
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

synth: install
	rm -rf cdk.out
	$(CDK) synth --no-notices --quiet -c config_dir=$(CONFIG_DIR) > /dev/null

# The SageMaker SDK builds the definitions with no network: no credentials, no S3, no telemetry.
pipeline-definition: install
	$(PY) -m ml_code.pipelines.run --config-dir $(CONFIG_DIR) --definitions-out cdk.out/pipelines

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

bench: install
	@command -v wrk > /dev/null || { echo "bench/serving.py needs wrk (Debian: apt-get install wrk)"; exit 2; }
	$(PY) bench/synth_time.py
	$(PY) bench/model_quality.py
	$(PY) bench/serving.py
	$(PY) bench/training_cost.py

clean:
	rm -rf cdk.out build .pytest_cache
