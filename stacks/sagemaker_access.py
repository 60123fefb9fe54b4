"""IAM statements that SageMaker roles of this platform share: data, key, images, logs, VPC interfaces.

The Studio personas, the pipeline's job role and the VPC Lambda build their policies from
these, so one data-access rule has one definition.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def sagemaker_arn(scope: Construct, resource: str, name: str) -> str:
    return cdk.Stack.of(scope).format_arn(service="sagemaker", resource=resource, resource_name=name)


def domain_arns(scope: Construct, domain_id: str) -> list[str]:
    """A Studio domain and everything users create inside it: apps, spaces, user profiles."""
    return [
        sagemaker_arn(scope, "domain", domain_id),
        *(sagemaker_arn(scope, kind, f"{domain_id}/*") for kind in ("app", "space", "user-profile")),
    ]


def data_statements(
    *, data_bucket_arn: str, artifacts_bucket_arn: str, data_key: kms.IKey
) -> list[iam.PolicyStatement]:
    """Read the data bucket, read and write the artifacts bucket, use the data key."""
    return [
        iam.PolicyStatement(
            sid="ReadData",
            actions=["s3:GetObject", "s3:ListBucket"],
            resources=[data_bucket_arn, f"{data_bucket_arn}/*"],
        ),
        iam.PolicyStatement(
            sid="ReadWriteArtifacts",
            actions=["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
            resources=[artifacts_bucket_arn, f"{artifacts_bucket_arn}/*"],
        ),
        iam.PolicyStatement(
            sid="UseTheDataKey",
            actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[data_key.key_arn],
        ),
    ]


def pull_images_statement(repositories: list[ecr.IRepository]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="PullImages",
        actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        resources=[r.repository_arn for r in repositories],
    )


def pass_own_role_statement(role: iam.IRole) -> iam.PolicyStatement:
    """Jobs started by this role run as this role, and only as it."""
    return iam.PolicyStatement(
        sid="PassOwnRoleToSageMakerJobs",
        actions=["iam:PassRole"],
        resources=[role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


def sagemaker_logs_statement(scope: Construct, actions: list[str]) -> iam.PolicyStatement:
    """SageMaker's own log groups (one per job type and app), whose names SageMaker chooses."""
    return iam.PolicyStatement(
        sid="SageMakerLogs",
        actions=actions,
        resources=[
            cdk.Stack.of(scope).format_arn(
                service="logs",
                resource="log-group",
                resource_name="/aws/sagemaker/*",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
            )
        ],
    )


def vpc_interface_statements(
    scope: Construct, *, security_group_id: str, actions: list[str], describe: list[str]
) -> list[iam.PolicyStatement]:
    """What something running in the VPC needs for its network interfaces: Describe* (no resource-level
    permissions exist for them) and ``actions`` on interfaces, subnets and its own security group."""
    stack = cdk.Stack.of(scope)
    return [
        iam.PolicyStatement(sid="NetworkInterfacesDescribe", actions=describe, resources=["*"]),
        iam.PolicyStatement(
            sid="NetworkInterfacesInTheVpc",
            actions=actions,
            resources=[
                stack.format_arn(service="ec2", resource="network-interface", resource_name="*"),
                stack.format_arn(service="ec2", resource="subnet", resource_name="*"),
                stack.format_arn(service="ec2", resource="security-group", resource_name=security_group_id),
            ],
        ),
    ]
