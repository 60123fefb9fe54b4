"""Lambda entry point of the monitoring results function (thin: parse, delegate, log).

An EventBridge rule sends it this endpoint's monitoring jobs' state changes (both engines).
Publishing is idempotent by construction: a redelivered event puts the same datapoints with
the same timestamps, which CloudWatch aggregates within the period the alarms already use
(Maximum), so no idempotency table is needed.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from monitoring_results.events import ProcessingJobStateChange, Settings
from monitoring_results.results import Results

logger = Logger(service="monitoring-results")
tracer = Tracer(service="monitoring-results")

BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20)


class UnsupportedEvent(ValueError):
    """Not a processing job state change (named field by field)."""


@cache
def settings() -> Settings:
    return Settings.model_validate(dict(os.environ))


@cache
def results() -> Results:
    # Built on first use, not at import: tests and cold starts need no region to import.
    session = boto3.session.Session()
    return Results(
        settings(),
        s3=session.client("s3", config=BOTO_CONFIG),
        cloudwatch=session.client("cloudwatch", config=BOTO_CONFIG),
    )


def process(event: Any, worker: Results) -> dict[str, Any]:
    """Parse the event and publish its run's metrics.

    Raises:
        UnsupportedEvent: not a processing job state change, with the fields at fault.
    """
    try:
        parsed = parse(event=event, model=ProcessingJobStateChange)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors())
        raise UnsupportedEvent(f"not a processing job state change: {problems}") from None
    return worker.on_job(parsed).as_dict()


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = process(event, results())
    logger.info("monitoring run", extra=outcome)
    return outcome
