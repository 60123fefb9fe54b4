"""Integration fixtures: a model trained on the sample data by the real CLI, and a real server process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ml_code.serving.readiness import free_port, running_server

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "abalone.csv"
sys.path.insert(0, str(ROOT / "lambdas"))  # how Lambda sees the asset: packages at the root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``python -m ml_code.local_run`` on the sample data, as a user runs it (small search for speed)."""
    out = tmp_path_factory.mktemp("abalone-run")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_code.local_run",
            "--data",
            str(SAMPLE),
            "--target",
            "rings",
            "--problem-type",
            "regression",
            "--output",
            str(out),
            "--max-trials",
            "2",
            "--time-budget",
            "30",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out, result.stdout


@pytest.fixture(scope="session")
def server(trained_run) -> Iterator[tuple[int, subprocess.Popen]]:
    with running_server(trained_run[0] / "model") as handle:
        yield handle


# --- a moto server on 127.0.0.1: real HTTP, real botocore ------------------------------------------

REGION = "eu-west-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    yield f"http://127.0.0.1:{server._port}"
    server.stop()


def aws_client(service: str, endpoint: str | None, **kwargs: Any):
    """A boto3 client for the local AWS API server (or, with no endpoint, for botocore's Stubber)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **kwargs,
    )


def publish_discovery(ssm: Any, prefix: str, region: str = REGION) -> None:
    """Put what the foundation and model-build stacks publish for environment ``prefix``.

    The values are ones no config could derive (``published-...``): a runner that guessed names
    instead of reading these would use different ones.
    """
    registry = f"111111111111.dkr.ecr.{region}.amazonaws.com/{prefix}"
    for key, value in {
        "foundation/kms/data-key-arn": f"arn:aws:kms:{region}:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "foundation/network/private-subnet-ids": "subnet-0aaa,subnet-0bbb",
        "foundation/s3/data-bucket": f"published-data-{prefix}",
        "foundation/s3/artifacts-bucket": f"published-artifacts-{prefix}",
        "foundation/ecr/training-repository-uri": f"{registry}/tr",
        "foundation/ecr/inference-repository-uri": f"{registry}/in",
        "model-build/job-security-group-id": "sg-0ccc",
        "model-build/pipeline-role-arn": f"arn:aws:iam::111111111111:role/published-{prefix}",
    }.items():
        ssm.put_parameter(Name=f"/{prefix}/{key}", Value=value, Type="String", Overwrite=True)


def push_images(ecr: Any, prefix: str, tag: str) -> dict[str, str]:
    """Put a training and an inference image tagged ``tag`` in the repositories ``publish_discovery`` names.

    Returns each repository's digest for the tag (what ECR computed), by repository name.
    """
    digests = {}
    for name in ("tr", "in"):
        repository = f"{prefix}/{name}"
        layer = "sha256:" + hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest()
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": layer},
            # moto derives the image's digest from its layers': one layer per image and tag gives each its own.
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": layer}],
        }
        try:
            image = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)["image"]
            digests[repository] = image["imageId"]["imageDigest"]
        except ecr.exceptions.ImageAlreadyExistsException:
            digests[repository] = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])[
                "imageDetails"
            ][0]["imageDigest"]
    return digests
