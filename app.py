#!/usr/bin/env python3
"""CDK entry point: one Stage per environment, from config/<env>.yaml.

An environment is a config file: config/qa.yaml makes an environment qa, like the shipped three.

cdk synth                  # every environment in config/ (dev, staging, prod first)
cdk synth -c env=dev       # one environment; the CLI selects its stacks with 'dev/*'
cdk synth -c config_dir=config/examples/multi-account
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aws_cdk as cdk

from stacks.config import ConfigError, load_environments, load_promotions
from stacks.stage import EnvironmentStage

ROOT = Path(__file__).resolve().parent

# Stack traces in the assembly metadata carry jsii's random temp path; without them
# two synths of one commit are byte-identical. (Keys under "aws:" may not go in cdk.json.)
DETERMINISTIC_CONTEXT = {
    "aws:cdk:disable-stack-trace": True,
    "aws:cdk:disable-creation-stack-traces": True,
}


def cdk_json_context() -> dict[str, object]:
    """The feature flags and settings in cdk.json, for apps built outside the CLI (tests, benchmarks)."""
    context: dict[str, object] = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return context


def create_app(*, outdir: str | None = None, context: dict[str, object] | None = None) -> cdk.App:
    """The App every entry point uses: the CLI (via ``main``), the tests and the benchmarks.

    CDK's built-in CloudFormation validation is off: it downgrades its own errors to
    warnings and took three quarters of synth time, while cfn-lint runs over every
    template in ``make test`` and fails on any error or warning.
    """
    return cdk.App(
        outdir=outdir,
        context={**(context or {}), **DETERMINISTIC_CONTEXT},
        builtin_cloud_formation_validation=False,
    )


def build_app(app: cdk.App) -> list[EnvironmentStage]:
    """Build every selected environment's stage into ``app``.

    Raises:
        ConfigError: a missing or invalid config file, before any construct is built.
    """
    config_dir = Path(app.node.try_get_context("config_dir") or ROOT / "config")
    if not config_dir.is_absolute():
        config_dir = ROOT / config_dir
    configs = load_environments(config_dir, app.node.try_get_context("env"))
    # Deploys link environments (a registry and the endpoints it feeds): each stage needs the others' names.
    promotions = load_promotions(config_dir)
    return [EnvironmentStage(app, config, promotion=promotions[config.name]) for config in configs]


def main() -> None:
    app = create_app()
    try:
        build_app(app)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    app.synth()


if __name__ == "__main__":
    main()
