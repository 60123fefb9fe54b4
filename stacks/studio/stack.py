"""StudioStack: the domain, its persona roles, its users and its teardown, on the foundation."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.foundation.stack import FoundationStack
from stacks.platform_stack import PlatformStack
from stacks.studio.domain import StudioDomain
from stacks.studio.personas import PersonaRoles
from stacks.studio.teardown import DomainTeardown


class StudioStack(PlatformStack):
    """SageMaker Studio for one environment."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, foundation: FoundationStack) -> None:
        super().__init__(scope, id_, config=config, description=f"AWS-MLOps {config.name}: SageMaker Studio domain")
        network, keys = foundation.network, foundation.keys
        buckets, repos = foundation.buckets, foundation.repositories
        self.personas = PersonaRoles(self, "Personas", config=config)
        self.studio = StudioDomain(
            self,
            "Studio",
            config=config,
            vpc=network.vpc,
            subnets=network.subnets,
            key=keys.data_key,
            sharing_s3_uri=f"s3://{buckets.names['artifacts']}/studio-sharing",
            roles=dict(self.personas.roles),
        )
        self.personas.attach_policies(
            domain_id=self.studio.domain.attr_domain_id,
            subnet_ids=network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
            security_group_id=self.studio.security_group.security_group_id,
            data_key=keys.data_key,
            data_bucket_arn=buckets.bucket_arn("data"),
            artifacts_bucket_arn=buckets.bucket_arn("artifacts"),
            training_repository=repos.training,
            inference_repository=repos.inference,
        )
        self.teardown = DomainTeardown(
            self,
            "Teardown",
            config=config,
            domain=self.studio.domain,
            dependents=list(self.studio.user_profiles.values()),
            vpc=network.vpc,
            subnets=network.subnets,
            data_key=keys.data_key,
            logs_key=keys.logs_key,
        )
