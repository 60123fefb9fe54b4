"""Integration fixtures: a model trained on the sample data by the real CLI, and a real server process."""

from __future__ import annotations

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
