"""The events the retrain function receives, and its settings, as pydantic models.

EventBridge delivers:
- "CloudWatch Alarm State Change" (source ``aws.cloudwatch``): a drift, data-quality or model-quality
  alarm of an endpoint changed state. ALARM starts a retrain (or only notifies, as the alarm's
  monitoring context says); any other state is ignored.
- "SageMaker Processing Job State Change" (source ``aws.sagemaker``): a monitoring run ended.
  A failed run is notified, never retrained on (no verdict came out of it).

The alarms are created by ``stacks/monitoring`` with a JSON document as their description, the
monitoring context (:class:`AlarmContext`): which endpoint, check and model version they judge,
where that check's reports are, and whether they retrain or only notify. The alarm's state change
carries it (``detail.configuration.description``), also when it was forwarded from the endpoint's
account, where this function could not look the endpoint up.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Sizes as AWS documents them (CloudWatch's StateReason, alarm descriptions and dimension values,
# SageMaker's job messages): an event beyond them is not one AWS sent, and would overflow what the
# function stores and notifies.
STATE_REASON_MAX = 1023
ALARM_DESCRIPTION_MAX = 1024
DIMENSION_VALUE_MAX = 1024
JOB_MESSAGE_MAX = 1024
# SageMaker's endpoint names: the Endpoint dimension is used as one (S3 prefix, notifications).
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class _Lenient(BaseModel):
    # AWS adds fields over time; only the ones we read are declared.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlarmState(_Lenient):
    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str = Field(default="", max_length=STATE_REASON_MAX)
    timestamp: str = ""


class Metric(_Lenient):
    namespace: str = ""
    name: str = ""
    dimensions: dict[str, Annotated[str, Field(max_length=DIMENSION_VALUE_MAX)]] = {}


class MetricStat(_Lenient):
    metric: Metric


class AlarmMetric(_Lenient):
    id: str = ""
    metric_stat: MetricStat | None = Field(default=None, alias="metricStat")


class AlarmContext(_Lenient):
    """What the alarm judges, from its description (written by ``stacks/monitoring``)."""

    endpoint: str = Field(min_length=1, max_length=63)
    check: Literal["data-quality", "model-quality"]
    model_package: str = ""
    reports: str = Field(default="", pattern=r"^(s3://[^/]+/.*)?$")
    action: Literal["retrain", "notify"] = "retrain"


class AlarmConfiguration(_Lenient):
    description: str = Field(default="", max_length=ALARM_DESCRIPTION_MAX)
    metrics: list[AlarmMetric] = []

    def context(self) -> AlarmContext | None:
        """The monitoring context in the description, or None when it holds none (or not a valid one)."""
        try:
            document = json.loads(self.description)
        except ValueError:
            return None
        try:
            return AlarmContext.model_validate(document)
        except ValueError:
            return None


class AlarmDetail(_Lenient):
    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=255)
    state: AlarmState
    previous_state: AlarmState | None = Field(default=None, alias="previousState")
    configuration: AlarmConfiguration = AlarmConfiguration()

    def dimension(self, name: str) -> str | None:
        """The value of a dimension of the alarm's metric(s), if they agree on one."""
        values = {
            m.metric_stat.metric.dimensions[name]
            for m in self.configuration.metrics
            if m.metric_stat is not None and name in m.metric_stat.metric.dimensions
        }
        return values.pop() if len(values) == 1 else None

    @model_validator(mode="after")
    def _endpoint_is_a_sagemaker_name(self) -> AlarmDetail:
        endpoint = self.dimension("Endpoint")
        if endpoint is not None and not ENDPOINT_NAME.match(endpoint):
            raise ValueError(
                "configuration.metrics: the Endpoint dimension is not a SageMaker endpoint name "
                "(letters, digits and hyphens, 63 at most)"
            )
        return self


class AlarmStateChange(EventBridgeModel):
    # EventBridge always sets an id; an empty one would key no idempotency record and match any "rerun".
    id: str = Field(min_length=1, max_length=128)
    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmDetail


class ProcessingJobDetail(_Lenient):
    processing_job_name: str = Field(alias="ProcessingJobName", min_length=1, max_length=63)
    processing_job_status: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"] = Field(
        alias="ProcessingJobStatus"
    )
    monitoring_schedule_arn: str = Field(default="", alias="MonitoringScheduleArn", max_length=256)
    failure_reason: str = Field(default="", alias="FailureReason", max_length=JOB_MESSAGE_MAX)
    exit_message: str = Field(default="", alias="ExitMessage", max_length=JOB_MESSAGE_MAX)


class ProcessingJobStateChange(EventBridgeModel):
    id: str = Field(min_length=1, max_length=128)
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Processing Job State Change"] = Field(alias="detail-type")
    detail: ProcessingJobDetail


class PipelineExecutionDetail(_Lenient):
    pipeline_arn: str = Field(alias="pipelineArn", pattern=r"^arn:aws[a-z-]*:sagemaker:", max_length=256)
    pipeline_execution_arn: str = Field(
        alias="pipelineExecutionArn",
        pattern=r"^arn:aws[a-z-]*:sagemaker:[^/]*:pipeline/[^/]+/execution/",
        max_length=2048,
    )
    current_status: Literal["Executing", "Stopping", "Stopped", "Failed", "Succeeded"] = Field(
        alias="currentPipelineExecutionStatus"
    )
    display_name: str = Field(default="", alias="pipelineExecutionDisplayName", max_length=82)


class PipelineExecutionStatusChange(EventBridgeModel):
    """A build pipeline's execution changed status: how a retrain that started and then failed is heard of."""

    id: str = Field(min_length=1, max_length=128)
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Building Pipeline Execution Status Change"] = Field(alias="detail-type")
    detail: PipelineExecutionDetail


class Settings(_Lenient):
    """The function's environment variables, read once at cold start."""

    pipeline_name: str = Field(alias="PIPELINE_NAME", min_length=1, max_length=256)
    topic_arn: str = Field(alias="TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    table_name: str = Field(alias="TABLE_NAME", min_length=3, max_length=255)
    cooldown_hours: float = Field(default=24.0, alias="COOLDOWN_HOURS", gt=0, le=24 * 90)
    # Optional: train on this data instead of the pipeline's default InputDataUri.
    input_data_uri: str = Field(default="", alias="INPUT_DATA_URI", pattern=r"^(s3://[^/]+/.+)?$")
