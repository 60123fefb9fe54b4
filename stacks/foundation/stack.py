"""FoundationStack: wires the environment's keys, buckets, repositories, network and discovery."""

from __future__ import annotations

from aws_cdk import Fn
from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.foundation.buckets import PlatformBuckets
from stacks.foundation.discovery import DiscoveryParameters
from stacks.foundation.keys import PlatformKeys
from stacks.foundation.network import PrivateNetwork
from stacks.foundation.repositories import ImageRepositories
from stacks.platform_stack import PlatformStack, encrypted_log_group, harden_cdk_providers
from stacks.sagemaker_access import SAGEMAKER_LOG_GROUPS


class FoundationStack(PlatformStack):
    """Shared resources of one environment; later stacks take its attributes."""

    def __init__(
        self, scope: Construct, id_: str, *, config: EnvironmentConfig, consumers: list[EnvironmentConfig] | None = None
    ) -> None:
        """``consumers``: environments in other accounts whose endpoints serve this registry's versions."""
        super().__init__(scope, id_, config=config, description=f"AWS-MLOps {config.name}: keys, buckets, ECR, network")
        consumers = consumers or []
        self.keys = PlatformKeys(self, "Keys", config=config, consumers=consumers)
        self.buckets = PlatformBuckets(self, "Buckets", config=config, key=self.keys.data_key, consumers=consumers)
        self.repositories = ImageRepositories(
            self, "Repositories", config=config, key=self.keys.data_key, consumers=consumers
        )
        self.network = PrivateNetwork(self, "Network", config=config, logs_key=self.keys.logs_key)

        subnet_ids = self.network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
        self.discovery = DiscoveryParameters(
            self,
            "Discovery",
            prefix=config.discovery_parameter("foundation"),
            values={
                "kms/data-key-arn": self.keys.data_key.key_arn,
                "kms/logs-key-arn": self.keys.logs_key.key_arn,
                "s3/data-bucket": self.buckets.data.bucket_name,
                "s3/artifacts-bucket": self.buckets.artifacts.bucket_name,
                "s3/monitoring-bucket": self.buckets.monitoring.bucket_name,
                "ecr/training-repository-uri": self.repositories.training.repository_uri,
                "ecr/inference-repository-uri": self.repositories.inference.repository_uri,
                "network/vpc-id": self.network.vpc.vpc_id,
                "network/private-subnet-ids": Fn.join(",", subnet_ids),
            },
        )
        if config.owns_sagemaker_log_groups:
            # SageMaker would create these at run time without a key and keep them forever.
            self.sagemaker_log_groups = {
                name: encrypted_log_group(
                    self,
                    f"SageMakerLogs{name.rsplit('/', 1)[-1].capitalize()}",
                    config=config,
                    key=self.keys.logs_key,
                    name=name,
                )
                for name in SAGEMAKER_LOG_GROUPS
            }
        harden_cdk_providers(self, config=config, logs_key=self.keys.logs_key)
