"""What EventBridge Scheduler sends the launcher, and the launcher's settings, as pydantic models.

Each schedule's target input is a JSON template that Scheduler fills in at every invocation
(its context attributes, ``<aws.scheduler.scheduled-time>`` and the like)::

    {"check": "data-quality",
     "scheduled_time": "2026-11-23T10:10:00Z",
     "schedule_arn": "arn:aws:scheduler:eu-west-1:111111111111:schedule/default/mlops-staging-data-quality",
     "execution_id": "d6c9f1e6-...",
     "attempt": "1"}

The window is computed from ``scheduled_time``, not from the clock, so a retried or late
invocation checks the same window and names the same job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Check = Literal["data-quality", "model-quality"]
ProblemType = Literal["regression", "binary", "multiclass"]


class DeployedVersion(BaseModel):
    """``current/version.json``, written by the deploy (lambdas/monitoring_baseline): what is served now."""

    model_config = ConfigDict(extra="ignore")

    model_package_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[^/]+/\d+$")
    image_tag: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
    baseline_uri: str = Field(pattern=r"^s3://[^/]+/.+/$")


class ScheduledRun(BaseModel):
    """One invocation by a schedule."""

    model_config = ConfigDict(extra="ignore")

    check: Check
    scheduled_time: datetime
    schedule_arn: str = ""
    execution_id: str = ""
    attempt: str = ""

    @field_validator("scheduled_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("scheduled_time must carry a time zone (Scheduler sends UTC with a Z)")
        return value.astimezone(UTC)


class Settings(BaseModel):
    """The function's environment variables (set by ``stacks/monitoring``), read once at cold start."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    endpoint_name: str = Field(alias="ENDPOINT_NAME", min_length=1, max_length=63)
    variant_name: str = Field(alias="VARIANT_NAME", min_length=1, max_length=63)
    bucket: str = Field(alias="MONITORING_BUCKET", min_length=3, max_length=63)
    capture_prefix: str = Field(alias="CAPTURE_PREFIX", min_length=1)
    ground_truth_prefix: str = Field(alias="GROUND_TRUTH_PREFIX", min_length=1)
    report_prefix: str = Field(alias="REPORT_PREFIX", min_length=1)
    # The deployed version's baseline folder that the deploy keeps current (with its version.json).
    current_baseline_uri: str = Field(alias="CURRENT_BASELINE_URI", pattern=r"^s3://[^/]+/.+/$")
    # The source environment's training image repository (the tag is the deployed version's).
    image_repository: str = Field(alias="IMAGE_REPOSITORY", pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.[a-z.]+/[^:]+$")
    role_arn: str = Field(alias="JOB_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    kms_key_arn: str = Field(alias="KMS_KEY_ARN", pattern=r"^arn:aws[a-z-]*:kms:")
    subnet_ids: list[str] = Field(alias="SUBNET_IDS", min_length=1)
    security_group_ids: list[str] = Field(alias="SECURITY_GROUP_IDS", min_length=1)
    instance_type: str = Field(alias="INSTANCE_TYPE", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    volume_size_gb: int = Field(alias="VOLUME_SIZE_GB", ge=1)
    max_runtime_seconds: int = Field(alias="MAX_RUNTIME_SECONDS", ge=60, le=86400)
    job_name_prefix: str = Field(alias="JOB_NAME_PREFIX", min_length=1, max_length=40)
    period_hours: int = Field(alias="PERIOD_HOURS")
    ground_truth_delay_hours: int = Field(alias="GROUND_TRUTH_DELAY_HOURS", ge=1, le=120)
    quality_tolerance: float = Field(alias="QUALITY_TOLERANCE", gt=0, lt=1)
    problem_type: ProblemType = Field(alias="PROBLEM_TYPE")
    data_quality_schedule: str = Field(alias="DATA_QUALITY_SCHEDULE", min_length=1)
    model_quality_schedule: str = Field(alias="MODEL_QUALITY_SCHEDULE", min_length=1)

    @field_validator("subnet_ids", "security_group_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return [part for part in value.split(",") if part] if isinstance(value, str) else value

    @field_validator("period_hours")
    @classmethod
    def _hour_or_day(cls, value: int) -> int:
        if value not in (1, 24):
            raise ValueError("PERIOD_HOURS must be 1 (hourly) or 24 (daily)")
        return value

    def schedule(self, check: Check) -> str:
        """The schedule's name, which is also a folder of the reports and a metric dimension."""
        return self.data_quality_schedule if check == "data-quality" else self.model_quality_schedule
