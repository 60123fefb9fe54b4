"""Lambda entry point of the retrain function (thin: parse, deduplicate, delegate).

EventBridge rules send it the drift and model-quality alarms' state changes, the monitoring
jobs' failures, and the build pipeline's failed or stopped executions (a retrain that failed).
Redelivered events are answered from the idempotency record (DynamoDB, keyed by the event's id)
without acting twice; the cooldown in ``retrain.py`` keeps distinct alarms about the same model
from starting more than one retrain.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from model_retrain.events import AlarmStateChange, PipelineExecutionStatusChange, ProcessingJobStateChange, Settings
from model_retrain.retrain import Retrainer, RetrainError

logger = Logger(service="model-retrain")
tracer = Tracer(service="model-retrain")
metrics = Metrics(namespace="AWS-MLOps", service="model-retrain")

# Standard retry mode: throttling and 5xx are retried with backoff before an error surfaces.
BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20)


class UnsupportedEvent(ValueError):
    """An event that is not one of the three this function handles, or is malformed (named)."""


@cache
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


@cache
def retrainer() -> Retrainer:
    # Built on first use, not at import: tests and cold starts need no region to import.
    session = boto3.session.Session()
    return Retrainer(
        settings(),
        sagemaker=session.client("sagemaker", config=BOTO_CONFIG),
        dynamodb=session.client("dynamodb", config=BOTO_CONFIG),
        sns=session.client("sns", config=BOTO_CONFIG),
        s3=session.client("s3", config=BOTO_CONFIG),
    )


@cache
def idempotency() -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    store = DynamoDBPersistenceLayer(table_name=settings().table_name, boto_config=BOTO_CONFIG)
    # A redelivery within a day is answered from the record; the cooldown covers longer gaps.
    return store, IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=24 * 3600)


def process(event: dict[str, Any], worker: Retrainer) -> dict[str, str]:
    """Route one event to its decision.

    Raises:
        UnsupportedEvent: the event is not one this function handles, or is malformed (named).
    """
    if not isinstance(event, dict):
        raise UnsupportedEvent(f"expected an EventBridge event object, got {type(event).__name__}")
    kind = event.get("detail-type")
    try:
        if kind == "CloudWatch Alarm State Change":
            return worker.on_alarm(parse(event=event, model=AlarmStateChange)).as_dict()
        if kind == "SageMaker Processing Job State Change":
            return worker.on_monitoring_job(parse(event=event, model=ProcessingJobStateChange)).as_dict()
        if kind == "SageMaker Model Building Pipeline Execution Status Change":
            return worker.on_pipeline_execution(parse(event=event, model=PipelineExecutionStatusChange)).as_dict()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UnsupportedEvent(f"malformed {kind} event: {problems}") from None
    raise UnsupportedEvent(f"unsupported detail-type {kind!r}")


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    store, config = idempotency()
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="event", persistence_store=store, config=config)
    def once(event: dict[str, Any]) -> dict[str, str]:
        # Counted here, once per event: a redelivery answered from the record is not a second decision.
        try:
            decision = process(event, retrainer())
        except RetrainError:
            metrics.add_metric(name="Retrain_start_failed", unit=MetricUnit.Count, value=1)
            raise
        metrics.add_metric(name=f"Retrain_{decision['action']}", unit=MetricUnit.Count, value=1)
        return decision

    decision = once(event=event)
    logger.info("decision", extra=decision)
    return decision
