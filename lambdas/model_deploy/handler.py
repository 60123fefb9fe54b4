"""Lambda entry points of the deploy: ``trigger_handler`` (EventBridge) and ``task_handler`` (the state machine).

Both are thin: parse the event into its typed model, delegate to ``deploy.Deployer``, log the
decision. Clients are built on first use, not at import, so tests and cold starts need no region to
import. A malformed event is refused with the field that is wrong (``UnsupportedEvent``); the
state machine sees a failed task by its error name (``SmokeTestFailed``, ``RolledBack``, ...).
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

from model_deploy.deploy import Deployer
from model_deploy.events import ModelPackageStateChange, Settings, StageSettings, Task
from model_deploy.registry import Registry
from model_deploy.stage import Stage

logger = Logger(service="model-deploy")
tracer = Tracer(service="model-deploy")
metrics = Metrics(namespace="AWS-MLOps", service="model-deploy")

# Standard retry mode: throttling and 5xx are retried with backoff before an error surfaces.
BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class UnsupportedEvent(ValueError):
    """An event or task this function does not handle, or a malformed one (the field is named)."""


@cache
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


@cache
def deployer() -> Deployer:
    session = boto3.session.Session()

    def stage(stage_settings: StageSettings, deploy_id: str) -> Stage:
        return Stage.assume(stage_settings, session=session, deploy_id=deploy_id, config=BOTO_CONFIG)

    return Deployer(
        settings(),
        registry=Registry(session.client("sagemaker", config=BOTO_CONFIG), settings().model_package_group),
        stage=stage,
        s3=session.client("s3", config=BOTO_CONFIG),
        sns=session.client("sns", config=BOTO_CONFIG),
        dynamodb=session.client("dynamodb", config=BOTO_CONFIG),
        stepfunctions=session.client("stepfunctions", config=BOTO_CONFIG),
    )


@cache
def idempotency() -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    # The approvals table keeps the trigger's idempotency records too (key "id", TTL "expiration"): a
    # redelivered event is answered from its record, so it neither starts nor announces a second deploy.
    store = DynamoDBPersistenceLayer(table_name=settings().table_name, boto_config=BOTO_CONFIG)
    return store, IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=7 * 24 * 3600)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in exc.errors())


def parse_package_change(event: Any) -> ModelPackageStateChange:
    """The EventBridge event as its model, or UnsupportedEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise UnsupportedEvent(f"expected an EventBridge event object, got {type(event).__name__}")
    if event.get("detail-type") != "SageMaker Model Package State Change":
        raise UnsupportedEvent(f"unsupported detail-type {event.get('detail-type')!r}")
    try:
        return parse(event=event, model=ModelPackageStateChange)
    except ValidationError as exc:
        raise UnsupportedEvent(f"malformed model package state change: {_problems(exc)}") from None


def parse_task(event: Any) -> Task:
    """A state machine task as its model, or UnsupportedEvent naming what is wrong."""
    if not isinstance(event, dict):
        raise UnsupportedEvent(f"expected a task object, got {type(event).__name__}")
    try:
        return parse(event=event, model=Task)
    except ValidationError as exc:
        raise UnsupportedEvent(f"malformed deploy task: {_problems(exc)}") from None


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def trigger_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    change = parse_package_change(event)
    store, config = idempotency()
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="event", persistence_store=store, config=config)
    def once(event: dict[str, Any]) -> dict[str, str]:
        return deployer().on_package_change(change).as_dict()

    decision = once(event=event)
    logger.info("decision", extra=decision)
    metrics.add_metric(name=f"Deploy_{decision['action']}", unit=MetricUnit.Count, value=1)
    return decision


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def task_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_task(event)
    logger.append_keys(task=task.task, deploy_id=task.plan.deploy_id, stage=task.stage.name if task.stage else "")
    result = deployer().run(task)
    logger.info("task done", extra={"result": result})
    return result
