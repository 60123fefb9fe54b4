"""Lambda entry point of the Studio teardown custom resource (thin: parse, delegate, answer).

Create and Update only record the domain. Delete empties it (and deletes it with its home
EFS when the config says so), then answers CloudFormation. Repeated Delete events are
harmless: the teardown looks at what is left each time.

Every event with an https ``ResponseURL`` gets exactly one answer, whatever goes wrong:
a bad event, a client that cannot be built, an error nobody foresaw. Otherwise
CloudFormation would wait an hour for it. A Delete that cannot be read answers SUCCESS:
nothing was created from it, and failing it would leave a rolled-back Create stuck in
ROLLBACK_FAILED. An event without a usable URL (or an answer that could not be delivered)
is logged and raised, so that Lambda's retries and the dead-letter queue keep it.

Why this and not CDK's ``Provider`` framework with ``isComplete``: the framework answers
CloudFormation for us and can wait past 15 minutes, but adds a Step Functions state machine
and three CDK-owned Node.js functions per environment, each outside this function's controls
(dead-letter queue, reserved concurrency, encrypted log group) and each more compliance
findings to acknowledge, while the teardown fits one 15-minute invocation. Answering here
keeps one function whose every path is tested in-process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from studio_teardown import cfn_response
from studio_teardown.cfn_response import ResponseTarget, Status
from studio_teardown.events import (
    ValidationError,
    describe,
    parse_event,
    parse_properties,
    salvage_target,
    target_of,
)
from studio_teardown.teardown import Teardown, TeardownError

logger = Logger(service="studio-teardown")

# One SageMaker call is bounded (botocore's default read timeout is 60 s); the teardown retries throttling itself.
SDK_CONNECT_TIMEOUT_SECONDS = 5
SDK_READ_TIMEOUT_SECONDS = 20
# Kept in reserve at the deadline: a SageMaker call started just before it, then the whole answer with its retries.
SAFETY_MARGIN_SECONDS = 90.0


class ResponseNotDelivered(Exception):
    """CloudFormation could not be answered; raised so that Lambda retries and then dead-letters the event."""


@dataclass(frozen=True)
class Outcome:
    """What the handler decided and whether CloudFormation got it."""

    status: Status | None  # None: no answer could be addressed
    reason: str
    delivered: bool
    data: dict[str, str] = field(default_factory=dict)


@cache
def sagemaker_client() -> Any:
    """The SageMaker client, built on first use (not at import: tests and cold starts need no region)."""
    return boto3.client(
        "sagemaker",
        config=Config(
            connect_timeout=SDK_CONNECT_TIMEOUT_SECONDS,
            read_timeout=SDK_READ_TIMEOUT_SECONDS,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def handle(
    event: object,
    remaining_seconds: float,
    client_factory: Callable[[], Any] = sagemaker_client,
    respond: Callable[..., str | None] = cfn_response.send,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Process one custom-resource event and answer CloudFormation exactly once.

    Args:
        event: what Lambda passed in (anything: it is checked here).
        remaining_seconds: the invocation's time left.
        client_factory: builds the SageMaker client, inside the guarded path.
        respond: sends the answer (``cfn_response.send``); returns None or why it failed.
        sleep, clock: injected for tests.

    Returns:
        The status sent (None when there was nowhere to send it), the reason, and whether it arrived.
    """
    deadline = clock() + remaining_seconds - SAFETY_MARGIN_SECONDS
    if not isinstance(event, dict):
        return _unanswerable(salvage_target(event)[1])
    raw_physical_id = event.get("PhysicalResourceId")
    try:
        parsed = parse_event(event)
    except Exception as exc:  # a ValidationError above all; anything else is still an event that cannot be read
        problem = describe(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        target, why = salvage_target(event)
        if target is None:
            return _unanswerable(why)
        physical_id = _fallback_physical_id(raw_physical_id, target)
        if event.get("RequestType") == "Delete":
            return _answer(target, "SUCCESS", f"nothing to delete: unreadable event ({problem})", physical_id, respond)
        return _answer(target, "FAILED", f"bad event: {problem}", physical_id, respond)

    target = target_of(parsed)
    physical_id = _fallback_physical_id(raw_physical_id, target)
    try:
        status, reason, physical_id, data = _decide(parsed, physical_id, deadline, client_factory, sleep, clock)
    except Exception as exc:  # the answer of last resort: CloudFormation must hear something
        logger.exception("unexpected error")
        status, reason, data = "FAILED", f"unexpected error: {type(exc).__name__}: {exc}", {}
    return _answer(target, status, reason, physical_id, respond, data)


def _decide(
    event: Any,
    physical_id: str,
    deadline: float,
    client_factory: Callable[[], Any],
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> tuple[Status, str, str, dict[str, str]]:
    try:
        props = parse_properties(event)
    except ValidationError as exc:
        if event.request_type == "Delete":
            # Its Create failed on these same properties: nothing exists to tear down.
            return "SUCCESS", f"nothing to delete: invalid properties ({describe(exc)})", physical_id, {}
        return "FAILED", f"bad properties: {describe(exc)}", physical_id, {}
    if event.request_type == "Create":
        physical_id = f"studio-teardown-{props.domain_id}"
    data = {"DomainId": props.domain_id}
    if event.request_type != "Delete" or not props.teardown_on_delete:
        return "SUCCESS", "nothing to do", physical_id, data
    try:
        teardown = Teardown(
            client=client_factory(),
            domain_id=props.domain_id,
            deadline=deadline,
            sleep=sleep,
            clock=clock,
            log=lambda message: logger.info(message),
        )
        actions = teardown.run(delete_domain=props.home_efs_retention == "Delete")
    except (TeardownError, ClientError, BotoCoreError) as exc:
        logger.exception("teardown failed")
        return "FAILED", f"teardown of {props.domain_id} failed: {exc}", physical_id, data
    logger.info("teardown done", extra={"actions": actions})
    return "SUCCESS", f"{len(actions)} deletions", physical_id, data


def _fallback_physical_id(raw: object, target: ResponseTarget) -> str:
    # Update and Delete must echo CloudFormation's id; a Create that fails before it has one gets a stable one.
    if isinstance(raw, str) and 0 < len(raw) <= 1024:
        return raw
    return f"studio-teardown-{target.logical_resource_id or 'unknown'}"[:1024]


def _answer(
    target: ResponseTarget,
    status: Status,
    reason: str,
    physical_id: str,
    respond: Callable[..., str | None],
    data: dict[str, str] | None = None,
) -> Outcome:
    try:
        failure = respond(target, status=status, reason=reason, physical_id=physical_id, data=data)
    except Exception as exc:  # a respond that raises is still a failed delivery, not a crash
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        logger.error("CloudFormation was not answered", extra={"status": status, "reason": reason, "error": failure})
    else:
        logger.info("CloudFormation answered", extra={"status": status, "reason": reason})
    return Outcome(status, reason, failure is None, data or {})


def _unanswerable(why: str) -> Outcome:
    logger.error("custom resource event cannot be answered", extra={"error": why})
    return Outcome(None, why, False)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: object, context: Any) -> dict[str, str]:
    """Lambda's entry point: answer the event, and raise if CloudFormation did not get the answer."""
    outcome = handle(event, context.get_remaining_time_in_millis() / 1000)
    if not outcome.delivered:
        raise ResponseNotDelivered(f"CloudFormation not answered ({outcome.status}): {outcome.reason}")
    return {"status": str(outcome.status)}
