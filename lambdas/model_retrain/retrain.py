"""The retrain decision: one pipeline execution per model per cooldown, its reasons recorded, every decision notified.

Pure of Lambda: the clients are passed in, so tests drive it against a local AWS API server.

- "The model" is what the pipeline (``PIPELINE_NAME``) trains: every endpoint it deploys to serves
  a version of it, so the cooldown is one DynamoDB item per pipeline (``cooldown#<pipeline>``),
  written with a condition. Of several alarms firing together, on one endpoint or on several
  (staging and prod drifting on the same traffic), exactly one wins the write and starts a retrain.
- The execution's description says why (alarm, reason, endpoint, model version, violations file),
  so the lineage of the model it produces names the drift that caused it. The endpoint, the
  version and the reports' folder come from the alarm's monitoring context (its description), so
  they are known also when the alarm was forwarded from the endpoint's own account.
- ``ClientRequestToken`` is the event's id: a redelivered event cannot start a second execution.
- A rerun of the same event (Lambda's retry after an error, e.g. the notification failed) takes
  its own cooldown again, and finds the execution it already started recorded on the cooldown
  item: it notifies that execution instead of starting another (belt and braces: the token
  already makes SageMaker start at most one).
- A failed start (an AWS error or a timeout, after the client's retries) releases the cooldown it
  took, so the next alarm (or the retry) can try again.
- A retrain that started and then failed or was stopped (the build pipeline's execution status
  change) releases the cooldown it holds, so the next alarm retrains again, and is notified with
  SageMaker's failure reason. A failure of a build that no retrain started (a push's) is the CI's to
  report: ignored here.
- An alarm whose context says ``notify`` (data-quality checks other than drift, or an endpoint whose
  config turns retraining off) is notified and starts nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from model_retrain.events import (
    AlarmContext,
    AlarmStateChange,
    PipelineExecutionStatusChange,
    ProcessingJobStateChange,
    Settings,
)

Action = Literal[
    "started", "start_failed", "retrain_failed", "skipped_cooldown", "ignored", "notified", "monitoring_failed"
]


@dataclass(frozen=True)
class Decision:
    """What the function decided for one event, as notified and logged."""

    action: Action
    model: str
    reason: str
    execution_arn: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class RetrainError(RuntimeError):
    """Starting the retrain failed; the cooldown was released and the failure notified."""


class Retrainer:
    """Decides and acts on one event at a time."""

    def __init__(
        self,
        settings: Settings,
        *,
        sagemaker: Any,
        dynamodb: Any,
        sns: Any,
        s3: Any | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.sagemaker, self.dynamodb, self.sns, self.s3, self.clock = (
            settings,
            sagemaker,
            dynamodb,
            sns,
            s3,
            clock,
        )

    # --- events ------------------------------------------------------------------------------

    def on_alarm(self, event: AlarmStateChange) -> Decision:
        """An alarm changed state: retrain on ALARM, unless the model retrained within the cooldown."""
        detail = event.detail
        context = detail.configuration.context()
        model = (context.endpoint if context else None) or detail.dimension("Endpoint") or detail.alarm_name
        if detail.state.value != "ALARM":
            return Decision("ignored", model, f"alarm {detail.alarm_name} is {detail.state.value}, not ALARM")
        why = self._reasons(detail.alarm_name, detail.state.reason, model, context)
        if context is not None and context.action == "notify":
            decision = Decision("notified", model, f"notify only (no retrain): {why}")
            self._notify(decision, subject=f"Monitoring alarm: {detail.alarm_name}")
            return decision
        now = self.clock()
        taken, already_started = self._take_cooldown(event.id, now)
        if not taken:
            decision = Decision(
                "skipped_cooldown",
                model,
                f"alarm {detail.alarm_name}: {self.settings.pipeline_name} retrained less than "
                f"{self.settings.cooldown_hours:g} h ago",
            )
            self._notify(decision)
            return decision
        arn = already_started
        if not arn:
            try:
                arn = self._start(event.id, why)
            except (ClientError, BotoCoreError) as exc:  # BotoCoreError: timeouts and connection errors
                self._release_cooldown(event.id)
                failed = Decision("start_failed", model, f"retrain failed to start: {exc}; {why}")
                self._notify(failed, subject="Retrain FAILED to start")
                raise RetrainError(failed.reason) from exc
        self._record_execution(event.id, arn)
        decision = Decision("started", model, why, arn)
        self._notify(decision)
        return decision

    def on_monitoring_job(self, event: ProcessingJobStateChange) -> Decision:
        """A monitoring run ended: a failure is notified (there is no verdict to retrain on)."""
        job = event.detail
        if job.processing_job_status not in ("Failed", "Stopped"):
            return Decision("ignored", job.processing_job_name, f"monitoring job {job.processing_job_status}")
        schedule = f" (schedule {job.monitoring_schedule_arn})" if job.monitoring_schedule_arn else ""
        decision = Decision(
            "monitoring_failed",
            job.processing_job_name,
            f"monitoring job {job.processing_job_name}{schedule} {job.processing_job_status.lower()}: "
            f"{job.failure_reason or job.exit_message or 'no reason'}",
        )
        self._notify(decision, subject="Monitoring run FAILED")
        return decision

    def on_pipeline_execution(self, event: PipelineExecutionStatusChange) -> Decision:
        """A build ended: if a retrain started it and it failed or was stopped, free the cooldown and say so."""
        detail = event.detail
        arn, pipeline = detail.pipeline_execution_arn, self.settings.pipeline_name
        if detail.current_status not in ("Failed", "Stopped"):
            return Decision("ignored", pipeline, f"execution {arn} is {detail.current_status}", arn)
        if not self._release_cooldown_of(arn):
            return Decision("ignored", pipeline, f"execution {arn} {detail.current_status}: not a retrain's", arn)
        decision = Decision(
            "retrain_failed",
            pipeline,
            f"the retrain {arn} {detail.current_status.lower()}: {self._failure_reason(arn)}; "
            "its cooldown is released: the next alarm retrains again",
            arn,
        )
        self._notify(decision, subject=f"Retrain {detail.current_status.upper()}: {pipeline}")
        return decision

    # --- steps -------------------------------------------------------------------------------

    @property
    def _cooldown_key(self) -> dict[str, dict[str, str]]:
        return {"id": {"S": f"cooldown#{self.settings.pipeline_name}"}}

    def _take_cooldown(self, event_id: str, now: float) -> tuple[bool, str]:
        """Take the model's cooldown for this event.

        Returns:
            Whether it was taken (free, expired, or already this event's: a rerun, or botocore's retry
            of a write whose answer was lost), and the execution this event already started, if any.
        """
        until = int(now + self.settings.cooldown_hours * 3600)
        try:
            response = self.dynamodb.put_item(
                TableName=self.settings.table_name,
                Item={
                    **self._cooldown_key,
                    "until": {"N": str(until)},
                    "event": {"S": event_id},
                    "expiration": {"N": str(until)},  # the table's TTL attribute cleans it up
                },
                ConditionExpression="attribute_not_exists(id) OR #until < :now OR #event = :event",
                ExpressionAttributeNames={"#until": "until", "#event": "event"},
                ExpressionAttributeValues={":now": {"N": str(int(now))}, ":event": {"S": event_id}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False, ""
            raise
        old = response.get("Attributes", {})
        started = old.get("execution", {}).get("S", "") if old.get("execution_event", {}).get("S") == event_id else ""
        return True, started

    def _record_execution(self, event_id: str, arn: str) -> None:
        """Note on the cooldown item which execution this event started, for a rerun of the event to find."""
        self.dynamodb.update_item(
            TableName=self.settings.table_name,
            Key=self._cooldown_key,
            UpdateExpression="SET #execution = :arn, #execution_event = :event",
            ExpressionAttributeNames={"#execution": "execution", "#execution_event": "execution_event"},
            ExpressionAttributeValues={":arn": {"S": arn}, ":event": {"S": event_id}},
        )

    def _release_cooldown(self, event_id: str) -> None:
        try:
            self.dynamodb.delete_item(
                TableName=self.settings.table_name,
                Key=self._cooldown_key,
                ConditionExpression="#event = :event",
                ExpressionAttributeNames={"#event": "event"},
                ExpressionAttributeValues={":event": {"S": event_id}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _release_cooldown_of(self, execution_arn: str) -> bool:
        """End the cooldown if ``execution_arn`` is the retrain that holds it; whether it was.

        The item stays, expired (``until`` 0), naming its execution: a rerun of the same event (its
        notification failed) finds it again and notifies, until the next retrain takes the cooldown.
        """
        try:
            self.dynamodb.update_item(
                TableName=self.settings.table_name,
                Key=self._cooldown_key,
                UpdateExpression="SET #until = :ended",
                ConditionExpression="#execution = :arn",
                ExpressionAttributeNames={"#execution": "execution", "#until": "until"},
                ExpressionAttributeValues={":arn": {"S": execution_arn}, ":ended": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _failure_reason(self, execution_arn: str) -> str:
        """SageMaker's reason for the failure; the notification goes out without it if it cannot be read."""
        try:
            described = self.sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        except (ClientError, BotoCoreError) as exc:
            return f"no reason read ({type(exc).__name__})"
        return str(described.get("FailureReason") or "no reason given")

    def _reasons(self, alarm: str, reason: str, endpoint: str, context: AlarmContext | None) -> str:
        version = context.model_package if context and context.model_package else "unknown"
        parts = [f"alarm {alarm}", f"endpoint {endpoint}", f"model {version}"]
        if context is None:
            parts.append("no monitoring context in the alarm's description")
        else:
            parts.insert(1, f"check {context.check}")
            if context.reports:
                parts.append(f"violations {self._latest_violations(context.reports)}")
        if reason:
            parts.append(f"reason: {reason}")
        return "; ".join(parts)

    def _latest_violations(self, reports: str) -> str:
        """The newest constraint_violations.json under the check's reports folder, as an S3 URI.

        The folder is in the endpoint's monitoring bucket. Where this function may not list it (the
        endpoint is in another account), the folder itself is recorded, with why.
        """
        bucket, _, prefix = reports.removeprefix("s3://").partition("/")
        if self.s3 is None:
            return f"{reports} (not listed)"
        newest: tuple[Any, str] | None = None
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    # Ties (S3 keeps seconds) go to the later key: the folders are the runs' hours.
                    candidate = (item["LastModified"], item["Key"])
                    if item["Key"].endswith("constraint_violations.json") and (newest is None or candidate > newest):
                        newest = candidate
        except ClientError as exc:
            return f"{reports} (not listed: {exc.response.get('Error', {}).get('Code', 'error')})"
        except ParamValidationError:  # the folder comes from the event: botocore refuses a bucket S3 cannot have
            return f"{reports} (not listed: not an S3 bucket name)"
        return f"s3://{bucket}/{newest[1]}" if newest else f"{reports} (no report yet)"

    def _start(self, event_id: str, why: str) -> str:
        parameters = (
            [{"Name": "InputDataUri", "Value": self.settings.input_data_uri}] if self.settings.input_data_uri else []
        )
        response = self.sagemaker.start_pipeline_execution(
            PipelineName=self.settings.pipeline_name,
            PipelineExecutionDisplayName=f"retrain-{int(self.clock())}",
            PipelineExecutionDescription=f"retrain: {why}"[:3072],
            PipelineParameters=parameters,
            ClientRequestToken=event_id[:128].ljust(32, "0"),
        )
        return str(response["PipelineExecutionArn"])

    def _notify(self, decision: Decision, subject: str = "") -> None:
        titles = {
            "started": "Retrain started",
            "retrain_failed": "Retrain FAILED",
            "skipped_cooldown": "Retrain skipped (cooldown)",
            "monitoring_failed": "Monitoring run FAILED",
            "notified": "Monitoring alarm",
            "ignored": "Ignored",
        }
        self.sns.publish(
            TopicArn=self.settings.topic_arn,
            Subject=(subject or f"{titles[decision.action]}: {decision.model}")[:100],
            Message=json.dumps(decision.as_dict(), sort_keys=True),
        )
