"""EndpointMonitoring: everything that watches one endpoint, in its endpoint stack.

It lives in the endpoint's stack because its inputs change with each deploy: a new version brings
new baselines (the stack's parameters), and every resource here carries the ``HasModel``
condition, since there is nothing to monitor before the first deploy.

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

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
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
    ) -> None:
        """Args:
        config: the endpoint's environment (with ``monitoring`` and ``endpoint``).
        foundation: its keys, buckets and network.
        package: the endpoint stack's deploy parameters and ``HasModel`` condition.
        promotion: ``promotion.source`` is the environment whose registry and build feed the endpoint.
        security_group: the endpoint's security group (HTTPS out only): the jobs run in it.
        endpoint: the endpoint resource, once the stack has one: Model Monitor's schedules wait for it.

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
            job_settings=_digest(config),
        )
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
                role=self.job_role.role,
                data_key=keys.data_key,
                subnet_ids=subnet_ids,
                security_group=security_group,
                bucket_name=bucket_name,
                endpoint=endpoint,
            )
            # The schedules pass the role to the jobs they start: it must be able to act first.
            for schedule in self.engine.schedules.values():
                schedule.node.add_dependency(self.job_role.policy)
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
            self, "Alarms", config=config, source=source, package=package, bucket_name=bucket_name
        )
        self.forwarding = (
            ForwardToSource(self, "ForwardToSource", config=config, source=source)
            if source.account != config.account
            else None
        )
        only_with_model(self, package)


def _digest(config: EnvironmentConfig) -> str:
    """A digest of what the monitoring jobs are built from at synth (config alone: deterministic)."""
    document = {
        "monitoring": config.monitoring.model_dump(mode="json") if config.monitoring else None,
        "networking": config.networking.model_dump(mode="json"),
        "endpoint": config.endpoint_name,
    }
    return hashlib.sha256(repr(sorted(document.items())).encode()).hexdigest()[:16]
