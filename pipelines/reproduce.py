"""Rebuild a registered model version from its record, and check that the result is the same model.

    python -m pipelines.reproduce --config config/<env>.yaml --model-package-arn ARN [--wait] [--upsert]

It reads the version's metadata properties (what ``pipelines.definition`` records) and refuses,
naming what differs, unless everything the model was built from is still at hand:

- the checkout is at the recorded commit, with no changes to tracked files;
- the config file hashes to the recorded ``config_sha256`` (and so the image tag matches);
- the recorded images (``repo@sha256:...``) are still in ECR;
- the input under the recorded ``input_data_uri`` has the recorded identity (``data_sha256``:
  the objects are read and hashed here the way the preprocess step hashed the files it read,
  see ``ml_code.lineage``; that costs one read of the input);
- the pipeline runs this checkout's definition (else ``--upsert`` replaces it, until CI's next run).

It then starts the build pipeline with the recorded parameters (images by digest, the commit,
instance types and counts, the threshold) and a fresh ``RebuildId``, so that no step comes from
SageMaker's step cache. With ``--wait`` it follows the execution, finds the version it
registered (by ``pipeline_execution_arn``) and compares the two as ``ml_code.lineage`` defines
"the same model": the same winner, test predictions and evaluation metrics within 1e-9, from
the same data. Exit 0: the same model; 3: a different one; 1: refused or failed.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ml_code.lineage import BuildRecord, Comparison, compare_builds, input_identity
from pipelines.definition import RECORDED_PARAMETERS
from pipelines.image_tag import ROOT, image_tag
from pipelines.parameters import ParameterError
from pipelines.run import RunError, pin_image, run, wait
from pipelines.settings import settings_for
from stacks.config import ConfigError, EnvironmentConfig, load_config

DIFFERENT = 3
# What a version must record to be rebuilt (older versions recorded less).
REQUIRED = (*RECORDED_PARAMETERS, "config_sha256", "image_tag", "data_sha256")


class Refused(RuntimeError):
    """The version cannot be rebuilt as it was; the message says what differs."""


def record_of(sagemaker: Any, package_arn: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The package's description and its metadata properties.

    Raises:
        Refused: the package does not exist or recorded too little to be rebuilt.
    """
    try:
        package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    except ClientError as exc:
        raise Refused(f"model package {package_arn} could not be read: {exc}") from None
    record = dict(package.get("CustomerMetadataProperties") or {})
    missing = [key for key in REQUIRED if not record.get(key)]
    if missing:
        raise Refused(
            f"{package_arn} does not record {', '.join(missing)}: it was registered before versions recorded "
            "their lineage, and cannot be rebuilt from its record"
        )
    return package, record


def check_checkout(commit: str, repo: Path = ROOT) -> None:
    """The checkout must be at ``commit`` with no change to a tracked file.

    Raises:
        Refused: another commit, changed files, or not a git checkout.
    """
    if commit == "unknown":
        raise Refused("the version records source_commit 'unknown': it was not built by CI from a commit")

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise Refused(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}")
        return result.stdout

    head = git("rev-parse", "HEAD").strip()
    if not head.startswith(commit):
        raise Refused(f"the checkout is at {head[:12]}, the version was built from {commit}: git checkout {commit}")
    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    if changed:
        shown = ", ".join(line[3:] for line in changed[:5]) + (" ..." if len(changed) > 5 else "")
        raise Refused(f"the checkout has changes to tracked files ({shown}): commit or stash them")


def _bucket_and_key(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise Refused(f"{uri!r} is not an s3://bucket/key URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def read_keys(s3: Any, uri: str, spark: bool) -> list[str]:
    """The objects the preprocess step reads under ``uri``, as it reads them.

    pandas (a Processing input, S3Prefix): the ``.csv`` objects directly in the prefix's folder,
    which SageMaker downloads into the input directory the step lists. Spark: the object itself,
    or the files directly in that folder, less the names Spark skips (``_*``, ``.*``).
    """
    bucket, prefix = _bucket_and_key(uri)
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    if spark:
        if prefix in keys:
            return [prefix]
        folder = prefix.rstrip("/") + "/"
        names = [(k, k[len(folder) :]) for k in keys if k.startswith(folder)]
        return sorted(k for k, name in names if name and "/" not in name and not name.startswith(("_", ".")))
    folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
    return sorted(k for k in keys if "/" not in k[len(folder) :] and k.endswith(".csv"))


def s3_input_identity(s3: Any, uri: str, spark: bool) -> tuple[str, int]:
    """The identity (``ml_code.lineage.input_identity``) of the objects under ``uri``, and how many there are."""
    bucket, _ = _bucket_and_key(uri)
    files = []
    for key in read_keys(s3, uri, spark):
        digest = hashlib.sha256()
        for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
        files.append((key.rsplit("/", 1)[-1], digest.hexdigest()))
    return input_identity(files), len(files)


@dataclass(frozen=True)
class Rebuild:
    """A started rebuild: the execution and the parameters it was started with."""

    execution_arn: str
    parameters: dict[str, str]


def start_rebuild(
    config: EnvironmentConfig,
    package_arn: str,
    *,
    sagemaker: Any,
    ssm: Any,
    ecr: Any,
    s3: Any,
    repo: Path = ROOT,
    upsert: bool = False,
    wait_for_end: bool = False,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> Rebuild:
    """Check everything the version was built from, then start the pipeline with its recorded parameters.

    Raises:
        Refused: something the version was built from is not at hand (named).
        RunError: the runner could not upsert, start or follow the pipeline.
    """
    package, record = record_of(sagemaker, package_arn)
    if package.get("ModelPackageGroupName") != config.model_package_group_name:
        raise Refused(
            f"{package_arn} belongs to {package.get('ModelPackageGroupName')}, not to {config.name}'s "
            f"{config.model_package_group_name}: use that environment's config"
        )
    check_checkout(record["source_commit"], repo)
    tag = image_tag()  # of the code that runs here: the checkout just checked
    settings = settings_for(config, tag)
    if settings.config_sha256 != record["config_sha256"]:
        raise Refused(
            f"the config hashes to {settings.config_sha256[:12]}, the version recorded {record['config_sha256'][:12]}: "
            "the config file is not the one it was built with"
        )
    if tag != record["image_tag"]:
        raise Refused(f"this checkout's image tag is {tag}, the version recorded {record['image_tag']}")
    for key in ("training_image", "inference_image"):
        try:
            pin_image(ecr, record[key])
        except RunError as exc:
            raise Refused(f"the recorded {key} cannot be used: {exc}") from None
    if record["data_sha256"] == "unknown":
        raise Refused(f"{package_arn} does not know the identity of its input: the preprocess step recorded none")
    identity, count = s3_input_identity(s3, record["input_data_uri"], settings.spark_preprocessing)
    if identity != record["data_sha256"]:
        raise Refused(
            f"the {count} input object(s) under {record['input_data_uri']} have identity {identity[:12]}, the "
            f"version was built from {record['data_sha256'][:12]}: the data changed (S3 versioning may hold the old)"
        )
    log(f"checked: commit {record['source_commit'][:12]}, config, images, input {identity[:12]} ({count} object(s))")
    parameters = {name: record[key] for key, name in RECORDED_PARAMETERS.items()}
    parameters["RebuildId"] = f"reproduce-{int(clock())}"
    execution = run(
        config,
        overrides=[f"{name}={value}" for name, value in parameters.items()],
        start=True,
        wait_for_end=False,
        sagemaker=sagemaker,
        ssm=ssm,
        ecr=ecr,
        s3=s3,
        tag=tag,
        log=log,
        description=f"rebuild of {package_arn}"[:3072],
        keep_definition=not upsert,
    )
    assert execution is not None
    if wait_for_end:
        log(f"execution {wait(sagemaker, execution, sleep=sleep)}")
    return Rebuild(execution, parameters)


def version_of_execution(sagemaker: Any, group: str, execution_arn: str) -> str:
    """The model package the execution registered (matched by its recorded ``pipeline_execution_arn``).

    Raises:
        RunError: it registered none (the quality gate failed, or the execution did not end).
    """
    for page in sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    ):
        for summary in page["ModelPackageSummaryList"]:
            arn = summary["ModelPackageArn"]
            metadata = sagemaker.describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties") or {}
            if metadata.get("pipeline_execution_arn") == execution_arn:
                return str(arn)
    raise RunError(f"execution {execution_arn} registered no model version in {group}")


def build_record(sagemaker: Any, s3: Any, package_arn: str) -> BuildRecord:
    """A version's evaluation.json and predictions.csv (beside it, in the Evaluate step's output), from S3."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    try:
        uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    except KeyError:
        raise RunError(f"{package_arn} has no model-quality statistics (evaluation.json) attached") from None
    bucket, key = _bucket_and_key(uri)
    folder = key.rsplit("/", 1)[0]

    def text(object_key: str) -> str:
        try:
            return str(s3.get_object(Bucket=bucket, Key=object_key)["Body"].read().decode("utf-8"))
        except ClientError as exc:
            raise RunError(f"s3://{bucket}/{object_key} could not be read: {exc}") from None

    return BuildRecord.from_texts(text(key), text(f"{folder}/predictions.csv"))


def compare_versions(sagemaker: Any, s3: Any, original: str, rebuilt: str) -> Comparison:
    """Whether ``rebuilt`` is the same model as ``original`` (``ml_code.lineage``), and from the same record."""
    comparison = compare_builds(build_record(sagemaker, s3, original), build_record(sagemaker, s3, rebuilt))
    _, old = record_of(sagemaker, original)
    _, new = record_of(sagemaker, rebuilt)
    for key in ("data_sha256", "source_commit", "training_image", "inference_image", "config_sha256"):
        if old.get(key) != new.get(key):
            comparison.differences.append(f"{key}: {old.get(key)!r}, now {new.get(key)!r}")
    return comparison


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild a registered model version and check it is the same model.")
    parser.add_argument("--config", type=Path, required=True, help="the environment's config file")
    parser.add_argument("--model-package-arn", required=True)
    parser.add_argument("--wait", action="store_true", help="follow the rebuild and compare the two versions")
    parser.add_argument("--upsert", action="store_true", help="replace the pipeline's definition with this checkout's")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        import boto3

        session = boto3.Session(region_name=config.region)
        sagemaker, s3 = session.client("sagemaker"), session.client("s3")
        rebuild = start_rebuild(
            config,
            args.model_package_arn,
            sagemaker=sagemaker,
            ssm=session.client("ssm"),
            ecr=session.client("ecr"),
            s3=s3,
            upsert=args.upsert,
            wait_for_end=args.wait,
        )
        if not args.wait:
            print(f"rebuilding as {rebuild.execution_arn}; compare with --wait, or when it ends")
            return 0
        rebuilt = version_of_execution(sagemaker, config.model_package_group_name, rebuild.execution_arn)
        comparison = compare_versions(sagemaker, s3, args.model_package_arn, rebuilt)
    except (ConfigError, ParameterError, Refused, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model_package_arn} rebuilt as {rebuilt}")
    print(comparison.report())
    return 0 if comparison.same else DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
