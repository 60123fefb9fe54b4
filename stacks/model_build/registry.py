"""The environment's model package group: where the pipeline registers models for approval."""

from __future__ import annotations

from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.config import EnvironmentConfig


class ModelRegistry(Construct):
    """One model package group per environment; multi-account, the tooling account may read it, and the
    accounts whose endpoints serve its versions (``consumers``) may describe them."""

    def __init__(
        self, scope: Construct, id_: str, *, config: EnvironmentConfig, consumers: list[EnvironmentConfig]
    ) -> None:
        super().__init__(scope, id_)
        statements: list[dict[str, object]] = []
        partition = config.partition
        sagemaker_arn = f"arn:{partition}:sagemaker:{config.region}:{config.account}"
        versions = f"{sagemaker_arn}:model-package/{config.model_package_group_name}/*"
        for consumer in consumers:
            # An endpoint in another account creates its model from a version of this group.
            statements.append(
                {
                    "Sid": f"ServingAccount{consumer.account}DescribesVersions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{consumer.account}:root"},
                    "Action": ["sagemaker:DescribeModelPackage"],
                    "Resource": versions,
                    "Condition": {
                        "ArnLike": {
                            "aws:PrincipalArn": f"arn:{partition}:iam::{consumer.account}:role/{consumer.name_prefix}-*"
                        }
                    },
                }
            )
        if config.tooling_account:
            group_arn = f"{sagemaker_arn}:model-package-group/{config.model_package_group_name}"
            statements.append(
                {
                    "Sid": "ToolingAccountReads",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{partition}:iam::{config.tooling_account}:root"},
                    "Action": [
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:ListModelPackages",
                        "sagemaker:DescribeModelPackage",
                    ],
                    "Resource": [group_arn, versions],
                }
            )
        policy = {"Version": "2012-10-17", "Statement": statements} if statements else None
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=config.model_package_group_name,
            model_package_group_description=f"{config.name}: models the build pipeline registered, for approval",
            model_package_group_policy=policy,
        )
