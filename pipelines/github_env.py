"""What the GitHub Actions workflow needs to know of its environment, read from the config file.

    python -m pipelines.github_env --config config/examples/multi-account/dev.yaml >> "$GITHUB_ENV"

Prints ``NAME=value`` lines (account, region, name prefix, the image registry, the role to
assume, how long its credentials must last), so the workflow never restates what the config already says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stacks.config import RUNNER_SESSION_HOURS, ConfigError, EnvironmentConfig, load_config


def github_env(config: EnvironmentConfig) -> dict[str, str]:
    """The workflow's variables for one environment.

    Raises:
        ConfigError: the environment's model build does not use the ``github_actions`` source.
    """
    build = config.model_build
    if build is None or not build.enabled or build.source.kind != "github_actions":
        raise ConfigError(f"environment {config.name!r}: model_build.source.kind is not github_actions")
    return {
        "ENVIRONMENT": config.name,
        "AWS_ACCOUNT_ID": config.account,
        "AWS_REGION": config.region,
        "NAME_PREFIX": config.name_prefix,
        "REGISTRY": config.registry,
        "ROLE_ARN": f"arn:{config.partition}:iam::{config.account}:role/{config.github_role_name}",
        "RUNNER_SESSION_SECONDS": str(RUNNER_SESSION_HOURS * 3600),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the GitHub Actions environment of one config file.")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        values = github_env(load_config(args.config))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, value in values.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
