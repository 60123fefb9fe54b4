"""``lambdas/monitoring_results`` and the rule that sends it this endpoint's finished monitoring runs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import MONITORING_NAMESPACE, EnvironmentConfig
from stacks.functions import OwnRoleFunction, event_dead_letters
from stacks.monitoring.events import as_event_pattern, run_pattern


class MonitoringResults(Construct):
    """Publishes each finished run's violation counts (and, for the platform engine, its values) as metrics.

    Attributes:
        function: the results function.
        rule: this endpoint's monitoring jobs reaching Completed, Failed or Stopped.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        bucket_name: str,
        bucket_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        monitoring = config.monitoring
        assert monitoring is not None
        self.function = OwnRoleFunction(
            self,
            "Function",
            config=config,
            package="monitoring_results",
            function_name=f"{config.monitoring_function_prefix}results",
            description=f"Publishes the monitoring runs' results of {config.endpoint_name} as metrics",
            data_key=data_key,
            logs_key=logs_key,
            environment={
                "ENDPOINT_NAME": config.endpoint_name,
                "MONITORING_BUCKET": bucket_name,
                "REPORT_PREFIX": config.monitoring_report_prefix,
                "METRICS_NAMESPACE": MONITORING_NAMESPACE,
                "ENGINE": monitoring.engine.value,
                "JOB_NAME_PREFIX": config.monitoring_job_prefix,
                "DATA_QUALITY_SCHEDULE": config.monitoring_schedule_name("data-quality"),
                "MODEL_QUALITY_SCHEDULE": config.monitoring_schedule_name("model-quality"),
            },
        )
        reports = config.monitoring_report_prefix
        self.function.add_statements(
            iam.PolicyStatement(sid="ReadReports", actions=["s3:GetObject"], resources=[f"{bucket_arn}/{reports}/*"]),
            iam.PolicyStatement(
                sid="ListReports",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{reports}/*"]}},
            ),
            iam.PolicyStatement(
                sid="PublishMonitoringMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": MONITORING_NAMESPACE}},
            ),
        )
        self.rule = events.Rule(
            self,
            "Runs",
            description=f"{config.endpoint_name}'s monitoring runs that ended, to the results function",
            event_pattern=as_event_pattern(run_pattern(config, ["Completed", "Failed", "Stopped"])),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.function.function,
                dead_letter_queue=event_dead_letters(self, "Undelivered"),
                max_event_age=cdk.Duration.hours(6),
                retry_attempts=10,
            )
        )
