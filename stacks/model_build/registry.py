"""The environment's model package group: where the pipeline registers models for approval."""

from __future__ import annotations

from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.config import EnvironmentConfig


class ModelRegistry(Construct):
    """One model package group per environment; multi-account, the tooling account may read it."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, id_)
        policy = None
        if config.tooling_account:
            sagemaker_arn = f"arn:aws:sagemaker:{config.region}:{config.account}"
            group_arn = f"{sagemaker_arn}:model-package-group/{config.model_package_group_name}"
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ToolingAccountReads",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{config.tooling_account}:root"},
                        "Action": [
                            "sagemaker:DescribeModelPackageGroup",
                            "sagemaker:ListModelPackages",
                            "sagemaker:DescribeModelPackage",
                        ],
                        "Resource": [
                            group_arn,
                            f"arn:aws:sagemaker:{config.region}:{config.account}:model-package/"
                            f"{config.model_package_group_name}/*",
                        ],
                    }
                ],
            }
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "Group",
            model_package_group_name=config.model_package_group_name,
            model_package_group_description=f"{config.name}: models the build pipeline registered, for approval",
            model_package_group_policy=policy,
        )
