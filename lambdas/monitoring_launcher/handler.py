"""Lambda entry point of the monitoring launcher (thin: parse, delegate, log, count).

EventBridge Scheduler invokes it once per schedule period and check, with the input that
``stacks/monitoring`` templates (see ``events.py``). An error fails the invocation, so that
Scheduler's retry policy tries again and then sends the event to the schedule's dead-letter
queue; a skipped window (no captured data yet) is a normal answer, counted as a metric.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from monitoring_launcher.events import ScheduledRun, Settings
from monitoring_launcher.launcher import Launcher

logger = Logger(service="monitoring-launcher")
tracer = Tracer(service="monitoring-launcher")
metrics = Metrics(namespace="AWS-MLOps", service="monitoring-launcher")

# Standard retry mode: throttling and 5xx are retried with backoff before an error surfaces.
BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20)


class BadInvocation(ValueError):
    """The input is not a schedule's invocation (named field by field)."""


@cache
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


@cache
def launcher() -> Launcher:
    # Built on first use, not at import: tests and cold starts need no region to import.
    session = boto3.session.Session()
    return Launcher(
        settings(),
        s3=session.client("s3", config=BOTO_CONFIG),
        sagemaker=session.client("sagemaker", config=BOTO_CONFIG),
    )


def process(event: Any, worker: Launcher) -> dict[str, Any]:
    """Parse the schedule's input and launch.

    Raises:
        BadInvocation: not a schedule's input, with the fields at fault.
    """
    try:
        run = parse(event=event, model=ScheduledRun)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())
        raise BadInvocation(f"not a monitoring schedule's input: {problems}") from None
    return worker.launch(run).as_dict()


@logger.inject_lambda_context(log_event=True, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = process(event, launcher())
    logger.info("launch", extra=outcome)
    metrics.add_dimension(name="check", value=outcome["check"])
    metrics.add_metric(name=f"MonitoringRun_{outcome['action']}", unit=MetricUnit.Count, value=1)
    return outcome
