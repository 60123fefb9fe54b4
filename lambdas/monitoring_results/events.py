"""The event the results function receives, and its settings, as pydantic models.

EventBridge delivers "SageMaker Processing Job State Change" (source ``aws.sagemaker``) for:
- the platform engine's jobs, named ``<prefix>-monitor-dq-yyyymmddhh`` (``-mq-``);
- Model Monitor's executions of this endpoint's schedules, which SageMaker names itself and
  marks with ``MonitoringScheduleArn``.

The detail carries the job's description (DescribeProcessingJob's fields); only those read
here are declared, and most are optional: the function finds the report from the name or the
schedule when the output location is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Lenient(BaseModel):
    # AWS adds fields over time; only the ones read here are declared.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class S3Output(_Lenient):
    s3_uri: str = Field(alias="S3Uri")


class ProcessingOutput(_Lenient):
    output_name: str = Field(default="", alias="OutputName")
    s3_output: S3Output | None = Field(default=None, alias="S3Output")


class ProcessingOutputConfig(_Lenient):
    outputs: list[ProcessingOutput] = Field(default_factory=list, alias="Outputs")


class ProcessingJobDetail(_Lenient):
    processing_job_name: str = Field(alias="ProcessingJobName", min_length=1, max_length=63)
    processing_job_status: str = Field(alias="ProcessingJobStatus")
    monitoring_schedule_arn: str = Field(default="", alias="MonitoringScheduleArn")
    processing_output_config: ProcessingOutputConfig | None = Field(default=None, alias="ProcessingOutputConfig")
    creation_time: datetime | None = Field(default=None, alias="CreationTime")
    exit_message: str = Field(default="", alias="ExitMessage")

    @field_validator("creation_time", mode="before")
    @classmethod
    def _epoch_or_iso(cls, value: Any) -> Any:
        # SageMaker's events give times as epoch milliseconds (a number or a numeric string) or ISO text.
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
        return value


class ProcessingJobStateChange(EventBridgeModel):
    source: str = Field(pattern=r"^aws\.sagemaker$")
    detail_type: str = Field(alias="detail-type", pattern=r"^SageMaker Processing Job State Change$")
    detail: ProcessingJobDetail


class Settings(_Lenient):
    """The function's environment variables (set by ``stacks/monitoring``), read once at cold start."""

    endpoint_name: str = Field(alias="ENDPOINT_NAME", min_length=1, max_length=63)
    bucket: str = Field(alias="MONITORING_BUCKET", min_length=3, max_length=63)
    report_prefix: str = Field(alias="REPORT_PREFIX", min_length=1)
    namespace: str = Field(alias="METRICS_NAMESPACE", min_length=1, max_length=255)
    engine: str = Field(alias="ENGINE", pattern=r"^(platform|model_monitor)$")
    job_name_prefix: str = Field(alias="JOB_NAME_PREFIX", min_length=1)
    data_quality_schedule: str = Field(alias="DATA_QUALITY_SCHEDULE", min_length=1)
    model_quality_schedule: str = Field(alias="MODEL_QUALITY_SCHEDULE", min_length=1)
