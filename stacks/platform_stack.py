"""The base every platform stack derives from: environment, zones, tags, protection."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
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
    scope: Construct,
    id_: str,
    *,
    config: EnvironmentConfig,
    key: kms.IKey,
    retention_days: int | None = None,
    name: str | None = None,
) -> logs.LogGroup:
    """A log group encrypted with the logs key, kept for config's retention (or ``retention_days``)."""
    return logs.LogGroup(
        scope,
        id_,
        log_group_name=name,
        encryption_key=key,
        retention=log_retention(retention_days or config.retention.log_retention_days),
        removal_policy=removal_policy(config),
    )


def deny_all_but(
    config: EnvironmentConfig,
    *,
    sid: str,
    actions: list[str],
    allowed_arns: list[str],
    resources: list[str] | None = None,
) -> iam.PolicyStatement:
    """A resource-policy statement refusing ``actions`` to every principal but ``allowed_arns``.

    No account is exempt: the tooling account runs no CI (it reads), so nobody there may write
    what CI reads either. Bucket and repository policies both guard what CI reads this way.
    """
    conditions: dict[str, dict[str, object]] = {"ArnNotEquals": {"aws:PrincipalArn": allowed_arns}}
    return iam.PolicyStatement(
        sid=sid,
        effect=iam.Effect.DENY,
        principals=[iam.AnyPrincipal()],
        actions=actions,
        resources=resources,
        conditions=conditions,
    )


def log_retention(days: int) -> logs.RetentionDays:
    """CDK's enum member for a CloudWatch retention period that config has validated."""
    members = [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, members, strict=True))[days]


def harden_cdk_providers(stack: cdk.Stack, *, config: EnvironmentConfig, logs_key: kms.IKey) -> None:
    """Give CDK's own custom-resource handlers (auto-delete objects, restrict the default security group)
    an encrypted log group with retention, and replace their AWS-managed AWSLambdaBasicExecutionRole with
    a policy that writes only that group.

    These handlers are raw CloudFormation resources that CDK creates per stack; left alone, their logs go
    to a group Lambda creates at run time (no key, kept forever) and their role may create any log group.
    Call once the stack's constructs exist: the providers are created on first use.
    """
    for provider in stack.node.children:
        if not (provider.node.id.startswith("Custom::") and provider.node.id.endswith("CustomResourceProvider")):
            continue
        handler = provider.node.try_find_child("Handler")
        role = provider.node.try_find_child("Role")
        if not isinstance(handler, cdk.CfnResource) or not isinstance(role, cdk.CfnResource):
            continue
        name = provider.node.id.removeprefix("Custom::").removesuffix("CustomResourceProvider")
        log_group = encrypted_log_group(stack, f"{name}ProviderLogs", config=config, key=logs_key)
        handler.add_property_override("LoggingConfig.LogGroup", log_group.log_group_name)
        handler.node.add_dependency(log_group)
        role.add_property_deletion_override("ManagedPolicyArns")
        iam.CfnManagedPolicy(
            stack,
            f"{name}ProviderLogsPolicy",
            description=f"{config.name_prefix}: CDK's {name} handler writes its own log group only",
            roles=[role.ref],
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "OwnLogGroup",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": log_group.log_group_arn,
                    }
                ],
            },
        )
