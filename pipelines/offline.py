"""Make the sagemaker SDK (v2) build definitions without touching AWS.

The SDK wants a region and credentials to create its clients (it never calls them when
the default bucket is given and code is referenced in S3 or baked into the image), and
its telemetry calls S3 and STS. Import this module before building a definition.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

# Before the SDK is imported: no instance-metadata probing, no v2 deprecation banner.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
# The SDK logs, at WARNING, fields it drops from the definition on purpose (job names, set per run).
logging.getLogger("sagemaker").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="Running within a PipelineSession")


def sdk_offline() -> None:
    """Switch off telemetry and instance-metadata probing; idempotent."""
    from sagemaker.telemetry import telemetry_logging

    def _no_telemetry(*_args: Any, **_kwargs: Any) -> None:
        return None

    telemetry_logging._send_telemetry_request = _no_telemetry


def offline_session(region: str, default_bucket: str) -> Any:
    """A PipelineSession that needs no network: explicit region, dummy credentials, given bucket."""
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    sdk_offline()
    boto_session = boto3.Session(
        region_name=region, aws_access_key_id="offline", aws_secret_access_key="offline", aws_session_token="offline"
    )
    session = PipelineSession(boto_session=boto_session)
    # Setting the bucket this way skips the SDK's S3 call that checks or creates it.
    setattr(session, "_default_bucket", default_bucket)  # noqa: B010 - a private attribute, on purpose
    return session
