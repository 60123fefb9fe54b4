"""Lambda entry point of the monitoring-baseline custom resource (thin: parse, delegate, answer).

Create and Update materialize the deployed version's baseline (``baseline.py``) and answer with
its locations as attributes; the physical id is the baseline's folder, so a new version is a
new resource and CloudFormation's Delete of the old one removes nothing. Delete answers
SUCCESS at once.

Every event with an https ``ResponseURL`` gets exactly one answer, whatever goes wrong, or
CloudFormation would wait an hour. Only an event that cannot be answered (no usable URL, or the
answer not delivered) is raised, so that Lambda's retries and the dead-letter queue keep it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from monitoring_baseline import cfn_response
from monitoring_baseline.baseline import BaselineError, Materializer
from monitoring_baseline.events import parse_event, parse_properties

logger = Logger(service="monitoring-baseline")
BOTO_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=20)


class ResponseNotDelivered(Exception):
    """CloudFormation could not be answered; raised so that Lambda retries and then dead-letters the event."""


@dataclass(frozen=True)
class Outcome:
    status: cfn_response.Status | None
    reason: str
    delivered: bool
    data: dict[str, str] = field(default_factory=dict)


@cache
def materializer() -> Materializer:
    # Built on first use, not at import: tests and cold starts need no region to import.
    session = boto3.session.Session()
    return Materializer(
        s3=session.client("s3", config=BOTO_CONFIG), sagemaker=session.client("sagemaker", config=BOTO_CONFIG)
    )


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in error.errors())


def handle(event: Any, factory: Any = materializer, respond: Any = cfn_response.send) -> Outcome:
    """Process one custom-resource event and answer CloudFormation exactly once."""
    raw = event if isinstance(event, dict) else {}

    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    url = text("ResponseURL")
    ids = {key: text(key) for key in ("StackId", "RequestId", "LogicalResourceId")}
    physical = text("PhysicalResourceId")
    physical = physical or f"monitoring-baseline-{ids['LogicalResourceId'] or 'unknown'}"
    data: dict[str, str] = {}
    try:
        parsed = parse_event(raw)
    except ValidationError as exc:
        if not url.startswith("https://"):
            logger.error("custom resource event cannot be answered", extra={"error": _describe(exc)})
            return Outcome(None, _describe(exc), False)
        status: cfn_response.Status = "SUCCESS" if raw.get("RequestType") == "Delete" else "FAILED"
        reason = f"{'nothing to delete' if status == 'SUCCESS' else 'bad event'}: {_describe(exc)}"
    else:
        status, reason = "SUCCESS", "nothing to do"
        if parsed.request_type != "Delete":
            try:
                baseline = factory().materialize(parse_properties(parsed))
            except ValidationError as exc:
                status, reason = "FAILED", f"bad properties: {_describe(exc)}"
            except (BaselineError, ClientError, BotoCoreError) as exc:
                logger.exception("baseline not materialized")
                status, reason = "FAILED", f"baseline not materialized: {exc}"
            except Exception as exc:  # the answer of last resort: CloudFormation must hear something
                logger.exception("unexpected error")
                status, reason = "FAILED", f"unexpected error: {type(exc).__name__}: {exc}"
            else:
                data, physical, reason = baseline.data(), baseline.uri, f"baseline at {baseline.uri}"
    body = cfn_response.document(
        status=status,
        reason=reason,
        physical_id=physical,
        stack_id=ids["StackId"],
        request_id=ids["RequestId"],
        logical_id=ids["LogicalResourceId"],
        data=data,
    )
    failure = respond(url, body)
    if failure is not None:
        logger.error("CloudFormation was not answered", extra={"status": status, "reason": reason, "error": failure})
    else:
        logger.info("CloudFormation answered", extra={"status": status, "reason": reason})
    return Outcome(status, reason, failure is None, data)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: Any, context: Any) -> dict[str, str]:
    """Answer the event; raise if CloudFormation did not get the answer."""
    outcome = handle(event)
    if not outcome.delivered:
        raise ResponseNotDelivered(f"CloudFormation not answered ({outcome.status}): {outcome.reason}")
    return {"status": str(outcome.status)}
