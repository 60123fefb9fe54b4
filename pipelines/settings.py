"""From an environment's config to the pipeline's settings and default parameters.

Names come from the config (``stacks/config.py`` is their one home); everything the stacks
create is referenced through the discovery parameters they publish, ``{{ssm:/name}}``, which
``pipelines.run`` resolves at upsert. Nothing here derives a bucket, repository or role name.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from pipelines.definition import PipelineSettings
from stacks.config import EnvironmentConfig

# Discovery parameters the pipeline reads (published by the foundation and model-build stacks;
# tests/infra/test_discovery.py checks that every reference in a definition is published).
DATA_KEY = "foundation/kms/data-key-arn"
DATA_BUCKET = "foundation/s3/data-bucket"
ARTIFACTS_BUCKET = "foundation/s3/artifacts-bucket"
TRAINING_REPOSITORY = "foundation/ecr/training-repository-uri"
INFERENCE_REPOSITORY = "foundation/ecr/inference-repository-uri"
SUBNETS = "foundation/network/private-subnet-ids"
JOB_SECURITY_GROUP = "model-build/job-security-group-id"
PIPELINE_ROLE = "model-build/pipeline-role-arn"


def ssm_ref(name: str) -> str:
    """A reference to one parameter's value; it may stand inside a longer string."""
    return "{{ssm:" + name + "}}"


def ssm_list_ref(name: str) -> str:
    """A reference to a comma-separated parameter, expanded in place inside a list."""
    return "{{ssm-list:" + name + "}}"


def settings_for(config: EnvironmentConfig, image_tag: str) -> PipelineSettings:
    """The pipeline settings of one environment.

    Raises:
        ValueError: the environment has no ``model_build`` section.
    """
    if config.model_build is None:
        raise ValueError(f"environment {config.name!r} has no model_build section")
    build = config.model_build.pipeline

    def ref(key: str) -> str:
        return ssm_ref(config.discovery_parameter(key))

    artifacts = ref(ARTIFACTS_BUCKET)
    return PipelineSettings(
        name=config.build_pipeline_name,
        region=config.region,
        role_arn=ref(PIPELINE_ROLE),
        artifacts_bucket=artifacts,
        data_uri=f"s3://{ref(DATA_BUCKET)}/{build.input_data_key}",
        training_image=f"{ref(TRAINING_REPOSITORY)}:{image_tag}",
        inference_image=f"{ref(INFERENCE_REPOSITORY)}:{image_tag}",
        model_package_group=config.model_package_group_name,
        kms_key=ref(DATA_KEY),
        subnets=[ssm_list_ref(config.discovery_parameter(SUBNETS))],
        security_group_ids=[ref(JOB_SECURITY_GROUP)],
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
        image_tag=image_tag,
        config_sha256=hashlib.sha256(config.model_dump_json().encode()).hexdigest(),
    )


def spark_code_key(config: EnvironmentConfig, image_tag: str) -> str:
    """Where CI uploads the Spark preprocess script: versioned by the same content hash as the images."""
    return f"{config.pipeline_code_prefix}/{image_tag}/spark_preprocess.py"


def default_parameters(settings: PipelineSettings) -> dict[str, Any]:
    """The pipeline parameters' defaults (discovery references still unresolved)."""
    return {
        "InputDataUri": settings.data_uri,
        "ProcessingInstanceType": settings.processing_instance_type,
        "ProcessingInstanceCount": settings.processing_instance_count,
        "TrainingInstanceType": settings.training_instance_type,
        "TrainingInstanceCount": settings.training_instance_count,
        "MetricThreshold": settings.metric_threshold,
        "SourceCommit": source_commit(),
        "TrainingImage": settings.training_image,
        "InferenceImage": settings.inference_image,
        "RebuildId": "none",
    }


def source_commit(environ: dict[str, str] | None = None) -> str:
    """The commit CI is building: CodeBuild's resolved source version, or GitHub's SHA."""
    environ = dict(os.environ) if environ is None else environ
    return environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION") or environ.get("GITHUB_SHA") or "unknown"
