"""What a CI runner (a CodeBuild project or a GitHub Actions job) may do for the model build."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EnvironmentConfig


def upsert_and_run_statements(
    scope: Construct,
    config: EnvironmentConfig,
    pipeline_role: iam.IRole,
    artifacts_bucket_arn: str,
    data_key: kms.IKey,
) -> list[iam.PolicyStatement]:
    """Create/update this environment's SageMaker Pipeline, start it, follow it, read discovery parameters,
    resolve the images' digests, and upload the code the pipeline's Spark step runs."""
    stack = cdk.Stack.of(scope)
    pipeline = stack.format_arn(service="sagemaker", resource="pipeline", resource_name=config.build_pipeline_name)
    return [
        iam.PolicyStatement(
            sid="UploadPipelineCode",
            actions=["s3:PutObject"],
            resources=[f"{artifacts_bucket_arn}/{config.pipeline_code_prefix}/*"],
        ),
        iam.PolicyStatement(sid="EncryptUploads", actions=["kms:GenerateDataKey"], resources=[data_key.key_arn]),
        iam.PolicyStatement(
            sid="UpsertAndRunTheBuildPipeline",
            actions=[
                "sagemaker:CreatePipeline",
                "sagemaker:UpdatePipeline",
                "sagemaker:DescribePipeline",
                "sagemaker:StartPipelineExecution",
                "sagemaker:DescribePipelineExecution",
                "sagemaker:ListPipelineExecutionSteps",
                "sagemaker:AddTags",
            ],
            resources=[pipeline, f"{pipeline}/execution/*"],
        ),
        iam.PolicyStatement(
            sid="PassThePipelineRole",
            actions=["iam:PassRole"],
            resources=[pipeline_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            # The runner pins the images by digest: it resolves the content-hash tag it built to a digest.
            sid="ResolveImageDigests",
            actions=["ecr:DescribeImages"],
            resources=[
                stack.format_arn(service="ecr", resource="repository", resource_name=config.repository_name(image))
                for image in ("training", "inference")
            ],
        ),
        iam.PolicyStatement(
            sid="ReadDiscoveryParameters",
            actions=["ssm:GetParameter"],
            resources=[stack.format_arn(service="ssm", resource="parameter", resource_name=f"{config.name_prefix}/*")],
        ),
    ]


def push_image_statements(repositories: list[ecr.IRepository]) -> list[iam.PolicyStatement]:
    """Push the training and inference images; check whether a tag exists first."""
    return [
        iam.PolicyStatement(sid="RegistryToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
        iam.PolicyStatement(
            sid="PushImages",
            actions=[
                "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            resources=[r.repository_arn for r in repositories],
        ),
    ]
