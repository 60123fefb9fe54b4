"""From an environment's config to the pipeline's settings and default parameters.

Names that the platform fixes are derived here, the same way the stacks derive them:
the bucket names, the image repositories, the pipeline role, the model package group.
Values known only after deployment are references to the discovery parameters.
"""

from __future__ import annotations

from typing import Any

from ml_code.pipelines.definition import PipelineSettings
from stacks.config import EnvironmentConfig


def ssm_ref(name: str) -> str:
    return "{{ssm:" + name + "}}"


def ssm_list_ref(name: str) -> str:
    return "{{ssm-list:" + name + "}}"


def pipeline_role_name(config: EnvironmentConfig) -> str:
    return f"{config.name_prefix}-sagemaker-pipeline"


def job_security_group_parameter(config: EnvironmentConfig) -> str:
    return f"{config.ssm_prefix}/model-build/job-security-group-id"


def settings_for(config: EnvironmentConfig, image_tag: str) -> PipelineSettings:
    """The pipeline settings of one environment.

    Raises:
        ValueError: the environment has no ``model_build`` section.
    """
    if config.model_build is None:
        raise ValueError(f"environment {config.name!r} has no model_build section")
    build = config.model_build.pipeline
    registry = f"{config.account}.dkr.ecr.{config.region}.amazonaws.com/{config.name_prefix}"
    artifacts = f"{config.name_prefix}-artifacts-{config.account}-{config.region}"
    foundation = f"{config.ssm_prefix}/foundation"
    return PipelineSettings(
        name=config.build_pipeline_name,
        region=config.region,
        role_arn=f"arn:aws:iam::{config.account}:role/{pipeline_role_name(config)}",
        artifacts_bucket=artifacts,
        data_uri=f"s3://{config.name_prefix}-data-{config.account}-{config.region}/{build.input_data_key}",
        training_image=f"{registry}/training:{image_tag}",
        inference_image=f"{registry}/inference:{image_tag}",
        model_package_group=config.model_package_group_name,
        kms_key=ssm_ref(f"{foundation}/kms/data-key-arn"),
        subnets=[ssm_list_ref(f"{foundation}/network/private-subnet-ids")],
        security_group_ids=[ssm_ref(job_security_group_parameter(config))],
        target=build.target,
        problem_type=build.problem_type,
        processing_instance_type=build.processing_instance_type,
        processing_instance_count=build.processing_instance_count,
        training_instance_type=build.training_instance_type,
        training_instance_count=build.training_instance_count,
        metric_threshold=build.metric_threshold,
        time_budget_seconds=build.time_budget_seconds,
        spark_preprocessing=build.spark_preprocessing,
        spark_code_uri=f"s3://{artifacts}/{spark_code_key(config, image_tag)}",
    )


def spark_code_key(config: EnvironmentConfig, image_tag: str) -> str:
    """Where CI uploads the Spark preprocess script: versioned by the same content hash as the images."""
    return f"{config.build_pipeline_name}/code/{image_tag}/spark_preprocess.py"


def default_parameters(settings: PipelineSettings) -> dict[str, Any]:
    return {
        "InputDataUri": settings.data_uri,
        "ProcessingInstanceType": settings.processing_instance_type,
        "ProcessingInstanceCount": settings.processing_instance_count,
        "TrainingInstanceType": settings.training_instance_type,
        "TrainingInstanceCount": settings.training_instance_count,
        "MetricThreshold": settings.metric_threshold,
        "ModelApprovalStatus": "PendingManualApproval",
    }
