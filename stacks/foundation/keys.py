"""Customer-managed KMS keys: one for data at rest, one for CloudWatch Logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.platform_stack import removal_policy
from stacks.principals import consumer_principals


class PlatformKeys(Construct):
    """The environment's KMS keys, rotated yearly.

    The key policies keep CDK's default account statement (IAM policies in this
    account decide who may use the key) and add only the services that must use a
    key without an IAM role of ours: CloudWatch Logs for the logs key, and, when
    multi-account, the tooling account through S3 and ECR only.

    Attributes:
        data_key: S3 buckets, ECR repositories, SageMaker volumes and outputs.
        logs_key: CloudWatch log groups (flow logs, Lambda, CodeBuild).
    """

    def __init__(
        self, scope: Construct, id_: str, *, config: EnvironmentConfig, consumers: list[EnvironmentConfig]
    ) -> None:
        super().__init__(scope, id_)
        stack = cdk.Stack.of(self)
        removal = removal_policy(config)
        window = cdk.Duration.days(config.retention.key_pending_window_days)

        self.data_key: kms.IKey = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{config.name_prefix}/data",
            description=f"{config.name_prefix}: S3, ECR and SageMaker data at rest",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=window,
        )
        self.logs_key: kms.IKey = kms.Key(
            self,
            "LogsKey",
            alias=f"alias/{config.name_prefix}/logs",
            description=f"{config.name_prefix}: CloudWatch Logs",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=window,
        )
        self.logs_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsInThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                # In a key policy, "*" means this key.
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        if config.tooling_account:
            self.data_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ToolingAccountThroughS3AndEcr",
                    principals=[iam.AccountPrincipal(config.tooling_account)],
                    # It reads (decrypts) what S3 and ECR hold; it writes nothing, so it encrypts nothing.
                    actions=["kms:Decrypt", "kms:DescribeKey"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [
                                f"s3.{stack.region}.amazonaws.com",
                                f"ecr.{stack.region}.amazonaws.com",
                            ]
                        }
                    },
                )
            )
        if consumers:
            # Endpoints in other accounts read this registry's artifacts and images, which this key encrypts.
            self.data_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ServingAccountsThroughS3AndEcr",
                    principals=consumer_principals(consumers),
                    actions=["kms:Decrypt", "kms:DescribeKey"],
                    resources=["*"],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [f"s3.{stack.region}.amazonaws.com", f"ecr.{stack.region}.amazonaws.com"]
                        }
                    },
                )
            )
