"""A SageMaker Processing job run on this machine as SageMaker runs it: inputs from S3, entrypoint, output to S3.

moto records a created processing job and reports it complete at once; it runs nothing. The
platform's monitoring job is ``python -m ml_code.monitor`` in the training image, so here its S3
inputs are downloaded to its local paths (under a folder standing for ``/opt/ml/processing``), its
container entrypoint runs as a process with those paths, and its output folder is uploaded to its
S3 output, as SageMaker does at the end of a job.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROCESSING = "/opt/ml/processing/"


def upload_tree(s3: Any, local: Path, bucket: str, prefix: str) -> None:
    """Every file under ``local`` to ``s3://bucket/prefix<relative path>``."""
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        s3.put_object(Bucket=bucket, Key=f"{prefix}{path.relative_to(local).as_posix()}", Body=path.read_bytes())


def run_processing_job(
    s3: Any, job: dict[str, Any], root: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``job`` (``DescribeProcessingJob``'s answer) with ``root`` standing for /opt/ml/processing.

    Raises:
        ValueError: the job's entrypoint is not a Python module run (what the platform's jobs are).
    """

    def local(path: str) -> Path:
        return root / path.removeprefix(PROCESSING)

    for item in job["ProcessingInputs"]:
        bucket, _, prefix = item["S3Input"]["S3Uri"].removeprefix("s3://").partition("/")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                target = local(item["S3Input"]["LocalPath"]) / obj["Key"][len(prefix) :].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
    command = [
        local(a).as_posix() if a.startswith(PROCESSING) else a for a in job["AppSpecification"]["ContainerEntrypoint"]
    ]
    if command[:2] != ["python3", "-m"]:
        raise ValueError(f"not a Python module run: {command[:3]}")
    done = subprocess.run(
        [sys.executable, *command[1:]], cwd=ROOT, capture_output=True, text=True, check=False, timeout=timeout
    )
    for output in job["ProcessingOutputConfig"]["Outputs"]:
        bucket, _, prefix = output["S3Output"]["S3Uri"].removeprefix("s3://").partition("/")
        if done.returncode == 0:
            upload_tree(s3, local(output["S3Output"]["LocalPath"]), bucket, prefix.rstrip("/") + "/")
    return done
