"""Multi-account: the endpoint's monitoring events go to its source environment's default event bus.

The retrain function lives where the build it restarts lives (``Promotion.source``). When that is
another account, a rule here forwards the alarms' state changes and the failed monitoring runs
(the same patterns the source matches, ``events.py``) to the source's default bus, as a role that
may put events on that bus only. The source's bus policy admits this account, for these two kinds
of event only (``stacks/retrain``).
"""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.functions import event_dead_letters
from stacks.monitoring.events import alarm_pattern, as_event_pattern, failed_run_pattern
from stacks.sagemaker_access import service_principal


def default_bus_arn(config: EnvironmentConfig) -> str:
    """An environment's default event bus."""
    return f"arn:{config.partition}:events:{config.region}:{config.account}:event-bus/default"


class ForwardToSource(Construct):
    """Rules that forward this endpoint's monitoring events to the source account's default bus."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, source: EnvironmentConfig) -> None:
        super().__init__(scope, id_)
        bus_arn = default_bus_arn(source)
        role = iam.Role(
            self,
            "Role",
            assumed_by=service_principal(self, "events.amazonaws.com"),
            description=f"EventBridge: forwards {config.endpoint_name}'s monitoring events to {source.name}",
        )
        policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[role],
            description=f"{config.name_prefix}: put monitoring events on {source.name}'s default bus",
            statements=[iam.PolicyStatement(sid="PutOnSourceBus", actions=["events:PutEvents"], resources=[bus_arn])],
        )
        # Immutable: CDK would otherwise add the same grant to an inline policy.
        target_role = iam.Role.from_role_arn(self, "TargetRole", role.role_arn, mutable=False)
        bus = events.EventBus.from_event_bus_arn(self, "SourceBus", bus_arn)
        undelivered = event_dead_letters(self, "Undelivered")
        self.rules: list[events.Rule] = []
        for name, pattern in (("Alarms", alarm_pattern(config)), ("FailedRuns", failed_run_pattern(config))):
            rule = events.Rule(
                self,
                name,
                description=f"{config.endpoint_name}'s monitoring {name.lower()} to {source.name} ({source.account})",
                event_pattern=as_event_pattern(pattern),
            )
            rule.add_target(targets.EventBus(bus, role=target_role, dead_letter_queue=undelivered))
            rule.node.add_dependency(policy)
            self.rules.append(rule)
