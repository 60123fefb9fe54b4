"""EndpointMonitoring: everything that watches one endpoint, in its endpoint stack.

It lives in the endpoint's stack because its inputs change with each deploy: a new version brings
new baselines (the stack's parameters). A deploy updates the stack with its previous template and
new parameters, as the endpoint's CloudFormation role (``stacks/endpoint/access.py``), which may do
little; so a deploy changes as little here as it can:

- ``cdk deploy`` creates the functions, roles, queues, schedules, rules, alarms and dashboard (none
  of them waits for a model: before the first deploy the launcher finds no version and starts nothing);
- a deploy runs the baseline custom resource (it makes the version's baseline current), updates the
  alarms' descriptions (they name the served version), and, with Model Monitor, creates the job
  definitions and schedules once (``HasModel``: a schedule needs its endpoint);
- ``deploy_policy`` (the CloudFormation role's policy) gets exactly those permissions, by name.

- ``MonitoringBaseline``: at each deploy, the version's baselines copied into the monitoring bucket
  and its model-quality constraints written (a custom resource);
- ``MonitoringJobRole``: what the jobs of either engine may do;
- the engine (``monitoring.engine``): ``ModelMonitorSchedules`` or ``PlatformSchedules``;
- ``MonitoringResults``: each finished run's verdict as metrics (both engines);
- ``MonitoringAlarms``: the alarms on those metrics and the dashboard;
- ``ForwardToSource`` where the source environment (whose build the alarms retrain) is another account.
"""

from __future__ import annotations

import hashlib

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct, IConstruct

from stacks.config import EnvironmentConfig, MonitoringEngine, Promotion
from stacks.endpoint.package import DeployedPackage, only_with_model
from stacks.foundation.stack import FoundationStack
from stacks.monitoring.alarms import MonitoringAlarms
from stacks.monitoring.baseline import MonitoringBaseline
from stacks.monitoring.forwarding import ForwardToSource
from stacks.monitoring.model_monitor import ModelMonitorSchedules
from stacks.monitoring.platform_engine import PlatformSchedules
from stacks.monitoring.results import MonitoringResults
from stacks.monitoring.role import MonitoringJobRole
from stacks.sagemaker_access import sagemaker_arn


class EndpointMonitoring(Construct):
    """The monitoring of ``config.endpoint_name``, by ``config.monitoring``.

    Attributes:
        baseline: the deployed version's baseline, as the jobs read it.
        job_role: the role the monitoring jobs run as.
        engine: ``ModelMonitorSchedules`` or ``PlatformSchedules``.
        results: the function that publishes each run's metrics, and its rule.
        alarms: the alarms (``alarms.alarms``) and the dashboard (``alarms.dashboard``).
        forwarding: the rules to the source account's bus, or None in the source's own account.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        foundation: FoundationStack,
        package: DeployedPackage,
        promotion: Promotion,
        security_group: ec2.ISecurityGroup,
        endpoint: IConstruct | None = None,
        deploy_policy: iam.ManagedPolicy | None = None,
        alarm_topic: sns.ITopic | None = None,
    ) -> None:
        """Args:
        config: the endpoint's environment (with ``monitoring`` and ``endpoint``).
        foundation: its keys, buckets and network.
        package: the endpoint stack's deploy parameters and ``HasModel`` condition.
        promotion: ``promotion.source`` is the environment whose registry and build feed the endpoint.
        security_group: the endpoint's security group (HTTPS out only): the jobs run in it.
        endpoint: the endpoint resource, once the stack has one: Model Monitor's schedules wait for it.
        deploy_policy: the policy of the role CloudFormation acts as when a deploy updates the stack: it
            gets what applying a deploy to the monitoring needs (see the module docstring).
        alarm_topic: the endpoint's alarm topic: the monitoring alarms notify it too.

        Raises:
            ValueError: no environment deploys to this endpoint (nothing would ever be monitored, and
                no build could be retrained), or the engine is unavailable in the region.
        """
        super().__init__(scope, id_)
        monitoring, source = config.monitoring, promotion.source
        if monitoring is None:
            raise ValueError(f"{config.name}: EndpointMonitoring needs a monitoring section")
        if source is None or source.model_build is None:
            # load_promotions refuses such a set of files; this guards stages built without it.
            raise ValueError(
                f"{config.name}: monitoring needs a registry that deploys here: list {config.name} in the "
                "deploy.stages of the environment whose build trains its model"
            )
        keys, buckets, network = foundation.keys, foundation.buckets, foundation.network
        bucket_name, bucket_arn = buckets.names["monitoring"], buckets.bucket_arn("monitoring")
        subnet_ids = network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
        self.baseline = MonitoringBaseline(
            self,
            "Baseline",
            config=config,
            source=source,
            package=package,
            data_key=keys.data_key,
            logs_key=keys.logs_key,
            bucket_name=bucket_name,
            bucket_arn=bucket_arn,
        )
        # Nothing to copy before a version is served.
        only_with_model(self.baseline.node.find_child("Resource"), package)
        self.job_role = MonitoringJobRole(
            self,
            "JobRole",
            config=config,
            source=source,
            data_key=keys.data_key,
            monitoring_bucket_arn=bucket_arn,
            vpc=network.vpc,
            subnet_ids=subnet_ids,
            security_group=security_group,
        )
        self.engine: ModelMonitorSchedules | PlatformSchedules
        if monitoring.engine is MonitoringEngine.MODEL_MONITOR:
            self.engine = ModelMonitorSchedules(
                self,
                "ModelMonitor",
                config=config,
                source=source,
                baseline=self.baseline,
                settings_digest=_digest(config),
                role=self.job_role.role,
                data_key=keys.data_key,
                subnet_ids=subnet_ids,
                security_group=security_group,
                bucket_name=bucket_name,
                endpoint=endpoint,
            )
            # The schedules pass the role to the jobs they start: it must be able to act first; and the
            # first execution reads the baseline the custom resource makes current.
            for schedule in self.engine.schedules.values():
                schedule.node.add_dependency(self.job_role.policy, self.baseline.node.find_child("Resource"))
            only_with_model(self.engine, package)
        else:
            self.engine = PlatformSchedules(
                self,
                "Platform",
                config=config,
                source=source,
                baseline=self.baseline,
                role=self.job_role.role,
                data_key=keys.data_key,
                logs_key=keys.logs_key,
                subnet_ids=subnet_ids,
                security_group=security_group,
                bucket_name=bucket_name,
                bucket_arn=bucket_arn,
            )
        self.results = MonitoringResults(
            self,
            "Results",
            config=config,
            data_key=keys.data_key,
            logs_key=keys.logs_key,
            bucket_name=bucket_name,
            bucket_arn=bucket_arn,
        )
        self.alarms = MonitoringAlarms(
            self, "Alarms", config=config, source=source, package=package, bucket_name=bucket_name, topic=alarm_topic
        )
        self.forwarding = (
            ForwardToSource(self, "ForwardToSource", config=config, source=source)
            if source.account != config.account
            else None
        )
        if deploy_policy is not None:
            deploy_policy.add_statements(*self._deploy_statements(config))

    def _deploy_statements(self, config: EnvironmentConfig) -> list[iam.PolicyStatement]:
        """What CloudFormation needs, as the deploy's role, to apply a deploy's parameters to monitoring."""
        stack = cdk.Stack.of(self)
        alarms = [
            stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name=config.monitoring_alarm_name(kind),
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
            for kind in self.alarms.alarms
        ]
        statements = [
            iam.PolicyStatement(
                sid="MonitoringBaselineOfTheVersion",
                actions=["lambda:InvokeFunction"],
                resources=[self.baseline.function.function.function_arn],
            ),
            iam.PolicyStatement(
                sid="MonitoringAlarmsNameTheVersion",
                actions=[
                    "cloudwatch:PutMetricAlarm",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:TagResource",
                    "cloudwatch:UntagResource",
                    "cloudwatch:ListTagsForResource",
                ],
                resources=alarms,
            ),
        ]
        if isinstance(self.engine, ModelMonitorSchedules):
            engine = self.engine
            definitions = [
                sagemaker_arn(self, kind, name)
                for kind, name in (
                    ("data-quality-job-definition", engine.definition_names.get("data-quality")),
                    ("model-quality-job-definition", engine.definition_names.get("model-quality")),
                )
                if name
            ]
            schedules = [
                sagemaker_arn(self, "monitoring-schedule", s.monitoring_schedule_name)
                for s in engine.schedules.values()
            ]
            statements += [
                iam.PolicyStatement(
                    sid="ModelMonitorOnceServed",
                    actions=[
                        "sagemaker:CreateDataQualityJobDefinition",
                        "sagemaker:DescribeDataQualityJobDefinition",
                        "sagemaker:DeleteDataQualityJobDefinition",
                        "sagemaker:CreateModelQualityJobDefinition",
                        "sagemaker:DescribeModelQualityJobDefinition",
                        "sagemaker:DeleteModelQualityJobDefinition",
                        "sagemaker:CreateMonitoringSchedule",
                        "sagemaker:DescribeMonitoringSchedule",
                        "sagemaker:UpdateMonitoringSchedule",
                        "sagemaker:DeleteMonitoringSchedule",
                        "sagemaker:AddTags",
                        "sagemaker:ListTags",
                    ],
                    resources=[*definitions, *schedules],
                ),
                iam.PolicyStatement(
                    sid="ModelMonitorJobsRunAsTheMonitoringRole",
                    actions=["iam:PassRole"],
                    resources=[self.job_role.role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ]
        return statements


def _digest(config: EnvironmentConfig) -> str:
    """A digest of what the monitoring jobs are built from at synth (config alone: deterministic)."""
    document = {
        "monitoring": config.monitoring.model_dump(mode="json") if config.monitoring else None,
        "networking": config.networking.model_dump(mode="json"),
        "endpoint": config.endpoint_name,
    }
    return hashlib.sha256(repr(sorted(document.items())).encode()).hexdigest()[:16]
