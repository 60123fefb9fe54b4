"""Upsert the model-build pipeline and run it: what CI (CodeBuild or GitHub Actions) calls on every push.

    python -m pipelines.run --config config/dev.yaml [--parameter Name=Value ...] [--start] [--wait]
    python -m pipelines.run --config-dir config --definitions-out cdk.out/pipelines   # offline

Steps: check the parameters; build the definition offline; resolve its ``{{ssm:...}}``
references from the environment's discovery parameters; pin both images to the digest ECR
holds for their tag (``repo@sha256:...``, in the pipeline's defaults and in the execution's
parameters, so the jobs run exactly the recorded images, and so does a retrain that starts the
pipeline with its defaults); create or update the pipeline; start an execution; wait for it
and report the outcome (exit 1 naming the failed step).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from pipelines.image_tag import image_tag
from pipelines.parameters import ParameterError, check_parameters
from pipelines.settings import default_parameters, settings_for, spark_code_key
from stacks.config import PIPELINE_WAIT_HOURS, ConfigError, EnvironmentConfig, load_config, load_environments

SPARK_SCRIPT = Path(__file__).resolve().parents[1] / "ml_code" / "spark" / "preprocess.py"
# ``{{ssm:/name}}`` may stand anywhere in a string; ``{{ssm-list:/name}}`` only as a whole list item.
REF = re.compile(r"\{\{ssm:(/[^}]+)\}\}")
LIST_REF = re.compile(r"^\{\{ssm-list:(/[^}]+)\}\}$")
TERMINAL = {"Succeeded", "Failed", "Stopped"}
IMAGE_PARAMETERS = ("TrainingImage", "InferenceImage")
BY_TAG = re.compile(r"^(?P<registry>[^/]+)/(?P<repository>[^@]+):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
BY_DIGEST = re.compile(r"^(?P<registry>[^/]+)/(?P<repository>[^@]+)@(?P<digest>sha256:[0-9a-f]{64})$")


class RunError(RuntimeError):
    """The run cannot go on; the message says why."""


def definition_json(config: EnvironmentConfig, tag: str) -> dict[str, Any]:
    """The environment's pipeline definition, offline, with discovery references unresolved."""
    from pipelines.definition import get_pipeline

    return json.loads(get_pipeline(settings_for(config, tag)).definition())


def resolve_references(document: Any, get_parameter: Callable[[str], str]) -> Any:
    """Replace every ``{{ssm:/name}}`` with the parameter's value and expand ``{{ssm-list:/name}}`` in lists.

    Raises:
        RunError: a referenced parameter does not exist, or a list reference stands outside a list.
    """
    cache: dict[str, str] = {}

    def value(name: str) -> str:
        if name not in cache:
            try:
                cache[name] = get_parameter(name)
            except ClientError as exc:
                raise RunError(f"discovery parameter {name} could not be read: {exc}; is the stack deployed?") from None
        return cache[name]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                match = LIST_REF.match(item) if isinstance(item, str) else None
                if match:
                    out.extend(v for v in value(match.group(1)).split(",") if v)
                else:
                    out.append(walk(item))
            return out
        if isinstance(node, str):
            if "{{ssm-list:" in node:
                raise RunError(f"{node} stands outside a list")
            return REF.sub(lambda m: value(m.group(1)), node)
        return node

    return walk(document)


def pin_image(ecr: Any, uri: str) -> str:
    """``registry/repository:tag`` as ``registry/repository@sha256:...``, the digest ECR holds for the tag.

    A URI that names a digest already is returned as it is, once ECR confirms the image exists.
    The repository is looked up in the caller's account (the environment's, where CI runs).

    Raises:
        RunError: the image does not exist, or the caller may not describe it (naming the permission).
    """
    match = BY_DIGEST.match(uri) or BY_TAG.match(uri)
    if match is None:
        raise RunError(f"image {uri!r} is neither registry/repository:tag nor registry/repository@sha256:<digest>")
    found = match.groupdict()
    image_id = {"imageDigest": found["digest"]} if "digest" in found else {"imageTag": found["tag"]}
    try:
        details = ecr.describe_images(repositoryName=found["repository"], imageIds=[image_id])["imageDetails"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise RunError(f"image {uri} not found in ECR: did the image stage push it?") from None
        if code in ("AccessDeniedException", "AccessDenied"):
            raise RunError(
                f"ecr:DescribeImages on {found['repository']} was denied: the runner needs it to pin {uri} by digest"
            ) from None
        raise
    if not details:
        raise RunError(f"image {uri} not found in ECR: did the image stage push it?")
    return f"{found['registry']}/{found['repository']}@{details[0]['imageDigest']}"


def upsert(sagemaker: Any, name: str, definition: dict[str, Any], role_arn: str, description: str) -> str:
    """Create the pipeline, or update it when it exists. Returns "created" or "updated"."""
    body = json.dumps(definition)
    try:
        sagemaker.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFound", "ValidationException"):
            raise
        sagemaker.create_pipeline(
            PipelineName=name, PipelineDefinition=body, RoleArn=role_arn, PipelineDescription=description
        )
        return "created"
    sagemaker.update_pipeline(
        PipelineName=name, PipelineDefinition=body, RoleArn=role_arn, PipelineDescription=description
    )
    return "updated"


def wait(
    sagemaker: Any,
    execution_arn: str,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 30.0,
    timeout_seconds: float = PIPELINE_WAIT_HOURS * 3600,
) -> str:
    """Poll the execution until it ends. Returns its status.

    Raises:
        RunError: the execution failed or stopped (naming the failed steps and reasons), or the timeout passed.
    """
    waited = 0.0
    while True:
        status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        state = status["PipelineExecutionStatus"]
        if state == "Succeeded":
            return state
        if state in TERMINAL:
            steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)[
                "PipelineExecutionSteps"
            ]
            failed = [
                f"{s['StepName']}: {s.get('FailureReason', s['StepStatus'])}"
                for s in steps
                if s.get("StepStatus") in ("Failed", "Stopped")
            ]
            reason = status.get("FailureReason") or "; ".join(failed) or state
            raise RunError(f"pipeline execution {execution_arn} {state.lower()}: {reason}")
        if waited >= timeout_seconds:
            raise RunError(f"pipeline execution {execution_arn} still {state} after {timeout_seconds:.0f} s")
        sleep(poll_seconds)
        waited += poll_seconds


def run(
    config: EnvironmentConfig,
    *,
    overrides: list[str],
    start: bool,
    wait_for_end: bool,
    sagemaker: Any,
    ssm: Any,
    ecr: Any,
    tag: str,
    s3: Any = None,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    description: str | None = None,
    keep_definition: bool = False,
) -> str | None:
    """Check, upsert, and optionally start and wait. Returns the execution ARN when started.

    Args:
        keep_definition: refuse (RunError) when the pipeline exists with another definition than
            this checkout's, instead of replacing it (``pipelines.reproduce`` without ``--upsert``).
    """
    settings = settings_for(config, tag)

    def resolve(document: Any) -> Any:
        return resolve_references(document, lambda name: ssm.get_parameter(Name=name)["Parameter"]["Value"])

    check_parameters(default_parameters(settings), overrides, resolved=False)  # before any AWS call
    defaults = resolve(default_parameters(settings))
    for name in IMAGE_PARAMETERS:
        defaults[name] = pin_image(ecr, defaults[name])
    parameters = check_parameters(defaults, overrides)
    parameters = parameters.model_copy(update={n: pin_image(ecr, getattr(parameters, n)) for n in IMAGE_PARAMETERS})
    log("images " + ", ".join(f"{n} {getattr(parameters, n)}" for n in IMAGE_PARAMETERS))
    artifacts_bucket, role_arn = resolve([settings.artifacts_bucket, settings.role_arn])
    if settings.spark_preprocessing:
        # The definition refers to the script in S3; put it there before the pipeline can use it.
        if s3 is None:
            raise RunError("spark_preprocessing needs an S3 client to upload the Spark script")
        key = spark_code_key(config, tag)
        s3.put_object(Bucket=artifacts_bucket, Key=key, Body=SPARK_SCRIPT.read_bytes())
        log(f"uploaded {SPARK_SCRIPT.name} to s3://{artifacts_bucket}/{key}")
    definition = resolve(definition_json(config, tag))
    for parameter in definition["Parameters"]:
        if parameter["Name"] in IMAGE_PARAMETERS:  # a start with the defaults (a retrain) runs the pinned images
            parameter["DefaultValue"] = defaults[parameter["Name"]]
    if keep_definition:
        try:
            current = json.loads(sagemaker.describe_pipeline(PipelineName=settings.name)["PipelineDefinition"])
        except ClientError:
            current = None
        if current is not None and current != definition:
            raise RunError(
                f"pipeline {settings.name} runs another definition than this checkout builds "
                "(CI has upserted a newer commit since); --upsert replaces it until CI's next run"
            )
    action = upsert(
        sagemaker,
        settings.name,
        definition,
        role_arn,
        f"{config.name}: trains, evaluates, gates and registers (images {tag})",
    )
    log(f"pipeline {settings.name} {action} (images {tag})")
    if not start:
        return None
    execution = sagemaker.start_pipeline_execution(
        PipelineName=settings.name,
        PipelineParameters=parameters.as_execution_parameters(),
        PipelineExecutionDescription=description or f"images {tag}",
    )["PipelineExecutionArn"]
    log(f"started {execution}")
    if wait_for_end:
        log(f"execution {wait(sagemaker, execution, sleep=sleep)}")
    return str(execution)


def write_definitions(config_dir: Path, out_dir: Path, tag: str) -> list[Path]:
    """``make pipeline-definition``: each environment's definition JSON, offline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for config in load_environments(config_dir):
        if config.model_build is None or not config.model_build.enabled:
            continue
        path = out_dir / f"{config.name}.json"
        path.write_text(json.dumps(definition_json(config, tag), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upsert and run the model-build SageMaker Pipeline.")
    parser.add_argument("--config", type=Path, help="the environment's config file, e.g. config/dev.yaml")
    parser.add_argument("--config-dir", type=Path, help="with --definitions-out: every environment in this folder")
    parser.add_argument("--definitions-out", type=Path, help="write definitions offline and stop")
    parser.add_argument("--parameter", action="append", default=[], help="override a parameter: Name=Value")
    parser.add_argument("--image-tag", help="default: the hash of ml_code (what CI pushed)")
    parser.add_argument("--start", action="store_true")
    parser.add_argument("--wait", action="store_true")
    args = parser.parse_args(argv)
    tag = args.image_tag or image_tag()
    try:
        if args.definitions_out:
            for path in write_definitions(args.config_dir or Path("config"), args.definitions_out, tag):
                print(f"wrote {path}")
            return 0
        if not args.config:
            parser.error("--config is required unless --definitions-out is given")
        config = load_config(args.config)
        import boto3

        session = boto3.Session(region_name=config.region)
        run(
            config,
            overrides=args.parameter,
            start=args.start,
            wait_for_end=args.wait,
            sagemaker=session.client("sagemaker"),
            ssm=session.client("ssm"),
            ecr=session.client("ecr"),
            s3=session.client("s3"),
            tag=tag,
        )
    except (ConfigError, ParameterError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
