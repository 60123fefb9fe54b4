"""Score an S3 prefix in bulk with an approved model: a batch-transform SageMaker Pipeline and its command.

    python -m pipelines.batch --config config/dev.yaml --input s3://<data bucket>/scoring/2026-11/ \\
        [--model-package-arn ARN] [--output s3://...] [--instance-type ml.m5.xlarge] [--instance-count 1] [--wait]
    python -m pipelines.batch --config-dir config --definitions-out cdk.out/pipelines   # offline

The command picks the model version (the one given, which must be Approved, or the newest
Approved one by creation time, an explicit sort), creates a SageMaker model from that package
(``<prefix>-batch-<version>``: the VPC's private subnets, network isolation, the pipeline's
role), upserts the ``<prefix>-batch`` pipeline and starts it. The pipeline's one step is a
transform job: multi-record requests of up to 6 MB split on lines (what the serving app reads),
the data key on the volume and the output, and batch data capture (inputs and outputs with an
inference id) under the pipeline's prefix in the artifacts bucket.

A pipeline model step cannot take the package ARN as a parameter (the SDK parses it at build
time), which is why the command, not the pipeline, creates the model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipelines.offline import offline_session
from pipelines.run import RunError, resolve_references, upsert, wait
from pipelines.settings import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    DATA_KEY,
    JOB_SECURITY_GROUP,
    PIPELINE_ROLE,
    SUBNETS,
    ssm_ref,
)
from stacks.config import INSTANCE_TYPE, ConfigError, EnvironmentConfig, load_config, load_environments

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>[^\s]*)$")
# SageMaker's limit for one request of a transform job; the serving app reads whole lines of CSV.
MAX_PAYLOAD_MB = 6


@dataclass(frozen=True)
class BatchSettings:
    """Everything environment-specific the batch pipeline needs (discovery references unresolved)."""

    name: str
    region: str
    role_arn: str
    artifacts_bucket: str
    kms_key: str
    instance_type: str = "ml.m5.xlarge"


def batch_settings(config: EnvironmentConfig) -> BatchSettings:
    """The batch pipeline's settings of one environment (it scores with what that environment's build registers)."""

    def ref(key: str) -> str:
        return ssm_ref(config.discovery_parameter(key))

    return BatchSettings(
        name=config.batch_pipeline_name,
        region=config.region,
        role_arn=ref(PIPELINE_ROLE),
        artifacts_bucket=ref(ARTIFACTS_BUCKET),
        kms_key=ref(DATA_KEY),
    )


def get_batch_pipeline(settings: BatchSettings) -> Any:
    """Build the batch pipeline object; ``.definition()`` gives its JSON, offline."""
    from sagemaker.inputs import BatchDataCaptureConfig
    from sagemaker.transformer import Transformer
    from sagemaker.workflow.parameters import ParameterInteger, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_definition_config import PipelineDefinitionConfig
    from sagemaker.workflow.retry import StepExceptionTypeEnum, StepRetryPolicy
    from sagemaker.workflow.steps import TransformStep

    session = offline_session(settings.region, settings.artifacts_bucket)
    model_name = ParameterString("ModelName")
    input_uri = ParameterString("InputUri")
    output_uri = ParameterString("OutputUri")
    instance_type = ParameterString("InstanceType", default_value=settings.instance_type)
    instance_count = ParameterInteger("InstanceCount", default_value=1)
    transformer = Transformer(
        model_name=model_name,
        instance_type=instance_type,
        instance_count=instance_count,
        strategy="MultiRecord",
        max_payload=MAX_PAYLOAD_MB,
        assemble_with="Line",
        accept="text/csv",
        output_path=output_uri,
        output_kms_key=settings.kms_key,
        volume_kms_key=settings.kms_key,
        base_transform_job_name=f"{settings.name}-transform",
        sagemaker_session=session,
    )
    transform = TransformStep(
        name="Transform",
        step_args=transformer.transform(
            data=input_uri,
            data_type="S3Prefix",
            content_type="text/csv",
            split_type="Line",
            batch_data_capture_config=BatchDataCaptureConfig(
                destination_s3_uri=f"s3://{settings.artifacts_bucket}/{settings.name}/capture",
                kms_key_id=settings.kms_key,
                generate_inference_id=True,
            ),
            # One 6 MB request takes the server about 3 s here; allow slow instances, retry a failed request once.
            model_client_config={"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1},
        ),
        retry_policies=[
            StepRetryPolicy(
                exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                backoff_rate=2.0,
                interval_seconds=30,
                max_attempts=5,
            )
        ],
    )
    return Pipeline(
        name=settings.name,
        parameters=[model_name, input_uri, output_uri, instance_type, instance_count],
        steps=[transform],
        sagemaker_session=session,
        # Jobs are named <prefix>-batch-transform-...: the role may create no other environment's.
        pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=True),
    )


def definition_json(config: EnvironmentConfig) -> dict[str, Any]:
    """The environment's batch pipeline definition, offline, with discovery references unresolved."""
    return json.loads(get_batch_pipeline(batch_settings(config)).definition())


def approved_package(sagemaker: Any, group: str, arn: str | None) -> dict[str, Any]:
    """The model version to score with: ``arn`` (checked: in ``group``, Approved) or the newest Approved one.

    Raises:
        RunError: the version does not exist, is in another group or not Approved, or none is Approved.
    """
    if arn is None:
        # Newest first by creation time, explicitly: the API's default order is oldest first.
        summaries = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )["ModelPackageSummaryList"]
        if not summaries:
            raise RunError(f"model package group {group} has no Approved version to score with")
        arn = summaries[0]["ModelPackageArn"]
    try:
        package = sagemaker.describe_model_package(ModelPackageName=arn)
    except ClientError as exc:
        raise RunError(f"model package {arn} could not be read: {exc}") from None
    if package.get("ModelPackageGroupName") != group:
        raise RunError(f"model package {arn} is in group {package.get('ModelPackageGroupName')}, not {group}")
    status = package.get("ModelApprovalStatus")
    if status != "Approved":
        raise RunError(f"model package {arn} is {status}: only an Approved version scores in bulk")
    return dict(package)


def ensure_model(
    sagemaker: Any, name: str, package_arn: str, role_arn: str, subnets: list[str], security_group: str
) -> str:
    """Create the SageMaker model of ``package_arn`` (once: a model already made from it is reused).

    Raises:
        RunError: a model of that name exists but serves another package.
    """
    try:
        sagemaker.create_model(
            ModelName=name,
            ExecutionRoleArn=role_arn,
            Containers=[{"ModelPackageName": package_arn}],
            VpcConfig={"Subnets": subnets, "SecurityGroupIds": [security_group]},
            EnableNetworkIsolation=True,
        )
        return "created"
    except ClientError as exc:
        if "already exist" not in str(exc):
            raise
    existing = sagemaker.describe_model(ModelName=name)
    containers = existing.get("Containers") or [existing.get("PrimaryContainer", {})]
    served = [container.get("ModelPackageName") for container in containers]
    if served != [package_arn]:
        raise RunError(f"model {name} exists and serves {served}, not {package_arn}; delete it or pick another name")
    return "reused"


def run(
    config: EnvironmentConfig,
    *,
    input_uri: str,
    output_uri: str | None,
    package_arn: str | None,
    instance_type: str,
    instance_count: int,
    wait_for_end: bool,
    sagemaker: Any,
    ssm: Any,
    log: Any = print,
) -> str:
    """Pick the version, create its model, upsert the batch pipeline and start it. Returns the execution ARN."""
    if config.model_build is None or not config.model_build.enabled:
        raise RunError(f"environment {config.name} has no model build, so no registry to score from")
    if not S3_URI.match(input_uri):
        raise RunError(f"--input must be an s3://bucket/prefix URI, got {input_uri!r}")
    if output_uri is not None and not S3_URI.match(output_uri):
        raise RunError(f"--output must be an s3://bucket/prefix URI, got {output_uri!r}")
    if not re.fullmatch(INSTANCE_TYPE, instance_type):
        raise RunError(f"--instance-type must look like ml.m5.xlarge, got {instance_type!r}")
    if not 1 <= instance_count <= 100:
        raise RunError(f"--instance-count must be 1 to 100, got {instance_count}")

    def parameter(key: str) -> str:
        name = config.discovery_parameter(key)
        try:
            return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as exc:
            raise RunError(f"discovery parameter {name} could not be read: {exc}; is the stack deployed?") from None

    data_bucket, artifacts_bucket, role_arn = (parameter(k) for k in (DATA_BUCKET, ARTIFACTS_BUCKET, PIPELINE_ROLE))
    match = S3_URI.match(input_uri)
    assert match is not None  # checked above
    # The jobs' role reads these two buckets only: say so now rather than as AccessDenied an hour later.
    if match["bucket"] not in (data_bucket, artifacts_bucket):
        raise RunError(
            f"--input must be in the data bucket {data_bucket} (or {artifacts_bucket}): the job reads no other"
        )

    package = approved_package(sagemaker, config.model_package_group_name, package_arn)
    version = package["ModelPackageVersion"]
    model_name = f"{config.batch_pipeline_name}-{version}"
    subnets = parameter(SUBNETS).split(",")
    action = ensure_model(
        sagemaker, model_name, package["ModelPackageArn"], role_arn, subnets, parameter(JOB_SECURITY_GROUP)
    )
    log(f"model {model_name} {action} from {package['ModelPackageArn']}")
    if output_uri is None:
        output_uri = f"s3://{artifacts_bucket}/{config.batch_pipeline_name}/output/v{version}"
    elif not output_uri.startswith(f"s3://{artifacts_bucket}/{config.batch_pipeline_name}/"):
        raise RunError(
            f"--output must be under s3://{artifacts_bucket}/{config.batch_pipeline_name}/: the job writes nowhere else"
        )

    definition = resolve_references(
        definition_json(config), lambda name: ssm.get_parameter(Name=name)["Parameter"]["Value"]
    )
    upsert(sagemaker, config.batch_pipeline_name, definition, role_arn, f"{config.name}: batch transform")
    execution = str(
        sagemaker.start_pipeline_execution(
            PipelineName=config.batch_pipeline_name,
            PipelineParameters=[
                {"Name": "ModelName", "Value": model_name},
                {"Name": "InputUri", "Value": input_uri},
                {"Name": "OutputUri", "Value": output_uri},
                {"Name": "InstanceType", "Value": instance_type},
                {"Name": "InstanceCount", "Value": str(instance_count)},
            ],
            PipelineExecutionDescription=f"batch transform of {input_uri} with model version {version}",
        )["PipelineExecutionArn"]
    )
    log(f"started {execution}: {input_uri} -> {output_uri}")
    if wait_for_end:
        log(f"execution {wait(sagemaker, execution)}")
    return execution


def write_definitions(config_dir: Path, out_dir: Path) -> list[Path]:
    """Each environment's batch definition JSON, offline (beside the build pipeline's)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for config in load_environments(config_dir):
        if config.model_build is None or not config.model_build.enabled:
            continue
        path = out_dir / f"{config.name}-batch.json"
        path.write_text(json.dumps(definition_json(config), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score an S3 prefix with an approved model (batch transform).")
    parser.add_argument("--config", type=Path, help="the environment's config file, e.g. config/dev.yaml")
    parser.add_argument("--input", help="s3://bucket/prefix of CSV files without the target column")
    parser.add_argument(
        "--output", help="under s3://<artifacts bucket>/<prefix>-batch/; default: .../output/v<version>"
    )
    parser.add_argument("--model-package-arn", help="default: the newest Approved version of the environment")
    parser.add_argument("--instance-type", default="ml.m5.xlarge")
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--config-dir", type=Path, help="with --definitions-out: every environment in this folder")
    parser.add_argument("--definitions-out", type=Path, help="write definitions offline and stop")
    args = parser.parse_args(argv)
    try:
        if args.definitions_out:
            for path in write_definitions(args.config_dir or Path("config"), args.definitions_out):
                print(f"wrote {path}")
            return 0
        if not args.config or not args.input:
            parser.error("--config and --input are required unless --definitions-out is given")
        config = load_config(args.config)
        import boto3

        session = boto3.Session(region_name=config.region)
        run(
            config,
            input_uri=args.input,
            output_uri=args.output,
            package_arn=args.model_package_arn,
            instance_type=args.instance_type,
            instance_count=args.instance_count,
            wait_for_end=args.wait,
            sagemaker=session.client("sagemaker"),
            ssm=session.client("ssm"),
        )
    except (ConfigError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"error: AWS refused a call: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
