"""The base every platform stack derives from: environment, zones, tags, protection."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS, EnvironmentConfig, RemovalPolicyName


class PlatformStack(cdk.Stack):
    """A stack pinned to one environment's account and region.

    Availability zones come from config instead of a context lookup, so synth makes
    no AWS call and needs no ``cdk.context.json``.
    """

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, description: str) -> None:
        super().__init__(
            scope,
            id_,
            env=cdk.Environment(account=config.account, region=config.region),
            stack_name=f"{config.name_prefix}-{_kebab(id_)}",
            description=description,
            termination_protection=config.termination_protection,
        )
        self._zones = list(config.networking.availability_zones)
        self.config = config
        for key, value in sorted(config.tags.items()):
            cdk.Tags.of(self).add(key, value)

    @property
    def availability_zones(self) -> list[str]:
        """The zones named in config (overrides CDK's context lookup)."""
        return self._zones


def _kebab(name: str) -> str:
    out = []
    for i, char in enumerate(name):
        if char.isupper() and i:
            out.append("-")
        out.append(char.lower())
    return "".join(out)


def removal_policy(config: EnvironmentConfig) -> cdk.RemovalPolicy:
    """What stack deletion does to stateful resources: config's ``retention.removal_policy``."""
    destroy = config.retention.removal_policy is RemovalPolicyName.DESTROY
    return cdk.RemovalPolicy.DESTROY if destroy else cdk.RemovalPolicy.RETAIN


def encrypted_log_group(
    scope: Construct, id_: str, *, config: EnvironmentConfig, key: kms.IKey, retention_days: int | None = None
) -> logs.LogGroup:
    """A log group encrypted with the logs key, kept for config's retention (or ``retention_days``)."""
    return logs.LogGroup(
        scope,
        id_,
        encryption_key=key,
        retention=log_retention(retention_days or config.retention.log_retention_days),
        removal_policy=removal_policy(config),
    )


def log_retention(days: int) -> logs.RetentionDays:
    """CDK's enum member for a CloudWatch retention period that config has validated."""
    members = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, members, strict=True))[days]
