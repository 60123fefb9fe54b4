"""Engine ``platform``: EventBridge Scheduler starts ``lambdas/monitoring_launcher``, which starts the job.

One schedule per check (``<prefix>-data-quality``, ``<prefix>-model-quality``), ten minutes past
each hour (or past midnight, daily, UTC): by then SageMaker has written the previous hour's
captured data. The launcher computes the window from the scheduled time Scheduler passes, and
starts a SageMaker Processing job running ``python -m ml_code.monitor`` in the source
environment's training image at the deployed version's tag (both read at each run from the
version file the deploy writes: a deploy changes nothing here). Why a function between them: a
processing job's inputs are fixed when it is created, so something must compute the window's
folders and check that they hold data, and Scheduler's universal target cannot.

The launcher may create processing jobs named ``<prefix>-monitor-*`` only, and only in this
environment's subnets with the endpoint's security group, with network isolation, encryption
between instances and the data key on volume and output (IAM conditions), and pass only the
monitoring job role.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from stacks.config import ENDPOINT_VARIANT, EnvironmentConfig
from stacks.functions import OwnRoleFunction
from stacks.monitoring.baseline import MonitoringBaseline
from stacks.sagemaker_access import job_statements

# The processing job's limit; the check itself takes seconds to minutes on an hour's traffic.
MAX_RUNTIME_SECONDS = 3600


def cron(schedule: str) -> str:
    """Scheduler's cron: ten past each hour, or ten past midnight (UTC)."""
    return "cron(10 * * * ? *)" if schedule == "hourly" else "cron(10 0 * * ? *)"


class PlatformSchedules(Construct):
    """The launcher function and one EventBridge Scheduler schedule per check.

    Attributes:
        launcher: the function the schedules invoke.
        schedules: by check.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        source: EnvironmentConfig,
        baseline: MonitoringBaseline,
        role: iam.IRole,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        subnet_ids: Sequence[str],
        security_group: ec2.ISecurityGroup,
        bucket_name: str,
        bucket_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        monitoring = config.monitoring
        assert monitoring is not None and source.model_build is not None
        training_image = f"{source.registry}/{source.repository_name('training')}"
        self.launcher = OwnRoleFunction(
            self,
            "Launcher",
            config=config,
            package="monitoring_launcher",
            function_name=f"{config.monitoring_function_prefix}launcher",
            description=f"Starts the monitoring jobs of {config.endpoint_name} (platform engine)",
            data_key=data_key,
            logs_key=logs_key,
            environment={
                "ENDPOINT_NAME": config.endpoint_name,
                "VARIANT_NAME": ENDPOINT_VARIANT,
                "MONITORING_BUCKET": bucket_name,
                "CAPTURE_PREFIX": config.capture_prefix,
                "GROUND_TRUTH_PREFIX": config.ground_truth_prefix,
                "REPORT_PREFIX": config.monitoring_report_prefix,
                # Fixed: the deploy keeps this folder current, and the launcher reads the version from it.
                "CURRENT_BASELINE_URI": baseline.current_uri,
                "IMAGE_REPOSITORY": training_image,
                "JOB_ROLE_ARN": role.role_arn,
                "KMS_KEY_ARN": data_key.key_arn,
                "SUBNET_IDS": ",".join(subnet_ids),
                "SECURITY_GROUP_IDS": security_group.security_group_id,
                "INSTANCE_TYPE": monitoring.instance_type,
                "VOLUME_SIZE_GB": str(monitoring.volume_size_gb),
                "MAX_RUNTIME_SECONDS": str(MAX_RUNTIME_SECONDS),
                "JOB_NAME_PREFIX": config.monitoring_job_prefix,
                "PERIOD_HOURS": str(monitoring.period_hours),
                "GROUND_TRUTH_DELAY_HOURS": str(monitoring.ground_truth_delay_hours),
                "QUALITY_TOLERANCE": repr(monitoring.max_quality_degradation),
                "PROBLEM_TYPE": source.model_build.pipeline.problem_type,
                "DATA_QUALITY_SCHEDULE": config.monitoring_schedule_name("data-quality"),
                "MODEL_QUALITY_SCHEDULE": config.monitoring_schedule_name("model-quality"),
            },
        )
        self.launcher.add_statements(
            *job_statements(
                self,
                sid="MonitoringJobs",
                job_name_prefix=config.monitoring_job_prefix,
                subnet_ids=subnet_ids,
                security_group_ids=[security_group.security_group_id],
                data_key=data_key,
                processing_only=True,
            ),
            iam.PolicyStatement(
                sid="PassTheMonitoringJobRole",
                actions=["iam:PassRole"],
                resources=[role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="ReadTheDeployedVersion",
                actions=["s3:GetObject"],
                resources=[f"{bucket_arn}/{config.monitoring_baseline_prefix}/current/version.json"],
            ),
            iam.PolicyStatement(
                sid="FindTheWindowsData",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={
                    "StringLike": {
                        "s3:prefix": [
                            f"{config.capture_prefix}/{config.endpoint_name}/*",
                            f"{config.ground_truth_prefix}/*",
                        ]
                    }
                },
            ),
        )
        schedule_arns = [
            cdk.Stack.of(self).format_arn(
                service="scheduler", resource="schedule", resource_name=f"default/{config.monitoring_schedule_name(c)}"
            )
            for c in monitoring.checks
        ]
        invoker = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=_scheduler_principal(self, schedule_arns),
            description=f"EventBridge Scheduler: {config.endpoint_name}'s monitoring schedules invoke the launcher",
        )
        iam.ManagedPolicy(
            self,
            "SchedulerPolicy",
            roles=[invoker],
            description=f"{config.name_prefix}: monitoring schedules invoke the launcher",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeTheLauncher",
                    actions=["lambda:InvokeFunction"],
                    resources=[self.launcher.function.function_arn],
                ),
                iam.PolicyStatement(
                    sid="UndeliveredToTheLaunchersDeadLetters",
                    actions=["sqs:SendMessage"],
                    resources=[self.launcher.dead_letters.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="ScheduleKeyAndQueueKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[data_key.key_arn],
                ),
            ],
        )
        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for check in monitoring.checks:
            name = config.monitoring_schedule_name(check)
            # Scheduler fills in its context attributes at each invocation (lambdas/monitoring_launcher/events.py).
            payload = {
                "check": check,
                "scheduled_time": "<aws.scheduler.scheduled-time>",
                "schedule_arn": "<aws.scheduler.schedule-arn>",
                "execution_id": "<aws.scheduler.execution-id>",
                "attempt": "<aws.scheduler.attempt-number>",
            }
            self.schedules[check] = scheduler.CfnSchedule(
                self,
                check.title().replace("-", ""),
                name=name,
                description=f"{check} check of {config.endpoint_name}, {monitoring.schedule}",
                schedule_expression=cron(monitoring.schedule),
                schedule_expression_timezone="UTC",
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                kms_key_arn=data_key.key_arn,
                state="ENABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=self.launcher.function.function_arn,
                    role_arn=invoker.role_arn,
                    input=json.dumps(payload, sort_keys=True),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                        maximum_event_age_in_seconds=2 * 3600, maximum_retry_attempts=10
                    ),
                    dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(
                        arn=self.launcher.dead_letters.queue_arn
                    ),
                ),
            )


def _scheduler_principal(scope: Construct, schedule_arns: list[str]) -> iam.IPrincipal:
    """Scheduler, acting for this account's monitoring schedules only (no confused deputy)."""
    return iam.ServicePrincipal("scheduler.amazonaws.com").with_conditions(
        {
            "StringEquals": {"aws:SourceAccount": cdk.Stack.of(scope).account},
            "ArnLike": {"aws:SourceArn": schedule_arns},
        }
    )
