"""EndpointStack: the environment's real-time endpoint, its autoscaling, alarms and monitoring.

Created empty by ``cdk deploy`` (no model yet); a deploy sets the served version through the
stack's parameters (``stacks/endpoint/package.py``).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.config import EnvironmentConfig, Promotion
from stacks.endpoint.access import EndpointAccess, endpoint_log_group_name
from stacks.endpoint.hosting import Hosting, RollbackAlarms
from stacks.endpoint.package import DeployedPackage
from stacks.foundation.discovery import DiscoveryParameters
from stacks.foundation.stack import FoundationStack
from stacks.monitoring.construct import EndpointMonitoring
from stacks.platform_stack import PlatformStack, encrypted_log_group


class EndpointStack(PlatformStack):
    """The endpoint of one environment (``config.endpoint``), deployed to by its source's registry.

    Attributes:
        package: the parameters naming the served model version and its baselines.
        security_group: the endpoint's and its monitoring jobs' network interfaces (HTTPS out only).
        access: the model's role and the two roles a deploy uses (deployer, CloudFormation).
        hosting: the model, endpoint config, endpoint, autoscaling and rollback alarms.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        foundation: FoundationStack,
        promotion: Promotion,
    ) -> None:
        super().__init__(scope, id_, config=config, description=f"AWS-MLOps {config.name}: endpoint and monitoring")
        assert config.endpoint is not None
        self.foundation = foundation
        self.promotion = promotion
        # The registry whose approved versions this endpoint serves (itself when no deploy section names it).
        source = promotion.source or config
        keys, buckets = foundation.keys, foundation.buckets
        self.package = DeployedPackage(self, "Package", baselines=config.monitoring is not None)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=foundation.network.vpc,
            allow_all_outbound=False,
            description=f"{config.name_prefix} endpoint and monitoring jobs: HTTPS to the VPC and S3 endpoints",
        )
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC and S3 gateway endpoints"
        )
        # SageMaker would create the endpoint's log group at run time, with no key and no expiry.
        self.log_group = encrypted_log_group(
            self, "EndpointLogs", config=config, key=keys.logs_key, name=endpoint_log_group_name(config)
        )
        alarm_names = RollbackAlarms.names(config)
        self.access = EndpointAccess(
            self,
            "Access",
            config=config,
            source=source,
            vpc=foundation.network.vpc,
            security_group=self.security_group,
            data_key=keys.data_key,
            monitoring_bucket_arn=buckets.bucket_arn("monitoring"),
            alarm_names=alarm_names,
        )
        self.hosting = Hosting(
            self,
            "Hosting",
            config=config,
            package=self.package,
            model_role=self.access.model_role,
            vpc=foundation.network.vpc,
            security_group=self.security_group,
            data_key=keys.data_key,
            monitoring_bucket=buckets.monitoring,
        )
        self.discovery = DiscoveryParameters(
            self,
            "Discovery",
            prefix=config.discovery_parameter("endpoint"),
            values={"name": config.endpoint_name, "stack-name": self.stack_name},
        )
        if config.monitoring is not None:
            self.monitoring = EndpointMonitoring(
                self,
                "Monitoring",
                config=config,
                foundation=foundation,
                package=self.package,
                promotion=promotion,
                security_group=self.security_group,
                endpoint=self.hosting.endpoint,
                deploy_policy=self.access.cloudformation_policy,
                alarm_topic=self.hosting.alarm_topic.topic,
            )
