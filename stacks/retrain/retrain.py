"""ModelRetrain: ``lambdas/model_retrain`` deployed where the build it restarts lives.

An endpoint's monitoring alarms retrain the model its source environment builds
(``Promotion.source``): dev's registry feeds staging and prod in the shipped single-account
configs, so dev holds the function, and staging's and prod's alarms reach it on the account's
default bus. Multi-account, the endpoint's stack forwards its events here
(``stacks/monitoring/forwarding.py``) and this environment's bus policy admits that account, for
those events only.

- The rules: per endpoint, its monitoring alarms going into ALARM, and its failed monitoring
  runs, with the very patterns the endpoint side forwards (``stacks/monitoring/events.py``); and
  the build pipeline's failed or stopped executions (a retrain that failed frees its cooldown).
- The table (``<prefix>-model-retrain``): the cooldown per pipeline and Powertools' idempotency
  records (key ``id``, TTL ``expiration``), KMS (the data key), point-in-time recovery.
- The topic (``<prefix>-model-retrain``): every decision (KMS, TLS only); ``deploy.notify_emails``
  are subscribed (each confirms by e-mail).
- The function: may start this environment's build pipeline and nothing else, use the table and
  topic, and list the reports of the endpoints in its own account (elsewhere it records the folder).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.functions import OwnRoleFunction, event_dead_letters
from stacks.monitoring.events import alarm_pattern, as_event_pattern, failed_build_pattern, failed_run_pattern
from stacks.monitoring.forwarding import default_bus_arn
from stacks.platform_stack import removal_policy
from stacks.sagemaker_access import sagemaker_arn


class ModelRetrain(Construct):
    """The retrain function of ``config``'s build pipeline, for the monitored endpoints in ``stages``.

    Attributes:
        function: the retrain function (``<prefix>-model-retrain``).
        table: cooldowns and idempotency records.
        topic: every decision, notified.
        rules: by endpoint environment, its alarm rule and its failed-runs rule.
        failed_builds: the build pipeline's failed or stopped executions.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        stages: Sequence[EnvironmentConfig],
        data_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        if config.deploy is None or config.model_build is None:
            raise ValueError(f"{config.name}: the retrain function restarts this environment's build: it needs deploy")
        name = config.retrain_function_name
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=name,
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=data_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expiration",
            removal_policy=removal_policy(config),
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=name,
            display_name=f"{config.name_prefix} retrains",
            master_key=data_key,
            enforce_ssl=True,
        )
        for email in config.deploy.notify_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
        self.function = OwnRoleFunction(
            self,
            "Function",
            config=config,
            package="model_retrain",
            function_name=name,
            description=f"Retrains {config.build_pipeline_name} when a monitored endpoint's alarm fires",
            data_key=data_key,
            logs_key=logs_key,
            environment={
                "PIPELINE_NAME": config.build_pipeline_name,
                "TOPIC_ARN": self.topic.topic_arn,
                "TABLE_NAME": self.table.table_name,
                "COOLDOWN_HOURS": f"{config.deploy.retrain_cooldown_hours:g}",
                "POWERTOOLS_METRICS_NAMESPACE": "AWS-MLOps",
            },
            reserved_concurrency=2,
        )
        same_account = [stage for stage in stages if stage.account == config.account]
        statements = [
            iam.PolicyStatement(
                sid="StartThisEnvironmentsBuild",
                actions=["sagemaker:StartPipelineExecution"],
                resources=[sagemaker_arn(self, "pipeline", config.build_pipeline_name)],
            ),
            iam.PolicyStatement(
                sid="ReadWhyARetrainFailed",
                actions=["sagemaker:DescribePipelineExecution"],
                resources=[f"{sagemaker_arn(self, 'pipeline', config.build_pipeline_name)}/execution/*"],
            ),
            iam.PolicyStatement(
                sid="CooldownsAndIdempotency",
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[self.table.table_arn],
            ),
            iam.PolicyStatement(sid="NotifyDecisions", actions=["sns:Publish"], resources=[self.topic.topic_arn]),
        ]
        if same_account:
            statements.append(
                iam.PolicyStatement(
                    sid="FindTheNewestViolations",
                    actions=["s3:ListBucket"],
                    resources=[
                        f"arn:{config.partition}:s3:::{stage.bucket_name('monitoring')}" for stage in same_account
                    ],
                    conditions={
                        "StringLike": {"s3:prefix": [f"{stage.monitoring_report_prefix}/*" for stage in same_account]}
                    },
                )
            )
        self.function.add_statements(*statements)
        undelivered = event_dead_letters(self, "Undelivered")

        def deliver(rule: events.Rule) -> None:
            rule.add_target(
                targets.LambdaFunction(
                    self.function.function,
                    dead_letter_queue=undelivered,
                    max_event_age=cdk.Duration.hours(24),
                    retry_attempts=20,
                )
            )

        self.failed_builds = events.Rule(
            self,
            "FailedBuilds",
            description=f"{config.build_pipeline_name}: failed or stopped executions to {name}",
            event_pattern=as_event_pattern(failed_build_pattern(config)),
        )
        deliver(self.failed_builds)
        self.rules: dict[str, tuple[events.Rule, events.Rule]] = {}
        for stage in stages:
            pair = []
            for kind, pattern in (("Alarms", alarm_pattern(stage)), ("FailedRuns", failed_run_pattern(stage))):
                rule = events.Rule(
                    self,
                    f"{stage.name.title().replace('-', '')}{kind}",
                    description=f"{stage.endpoint_name}: monitoring {kind.lower()} to {name}",
                    event_pattern=as_event_pattern(pattern),
                )
                deliver(rule)
                pair.append(rule)
            self.rules[stage.name] = (pair[0], pair[1])
        # Multi-account: this bus admits each endpoint account's monitoring events, and nothing else.
        for account in sorted({stage.account for stage in stages} - {config.account}):
            # A raw resource: the L1 class warns of its deprecated single-statement properties even when unset.
            cdk.CfnResource(
                self,
                f"AdmitMonitoringEventsFrom{account}",
                type="AWS::Events::EventBusPolicy",
                properties={
                    "EventBusName": "default",
                    "StatementId": f"{config.name_prefix}-monitoring-from-{account}",
                    "Statement": {
                        "Sid": f"MonitoringEventsFrom{account}",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:{config.partition}:iam::{account}:root"},
                        "Action": "events:PutEvents",
                        "Resource": default_bus_arn(config),
                        "Condition": {
                            "StringEquals": {
                                "events:source": ["aws.cloudwatch", "aws.sagemaker"],
                                "events:detail-type": [
                                    "CloudWatch Alarm State Change",
                                    "SageMaker Processing Job State Change",
                                ],
                            }
                        },
                    },
                },
            )
