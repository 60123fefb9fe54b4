"""Property tests of the teardown's event handling: whatever arrives, one answer or a logged error.

Events are generated from a valid Delete, Create or Update by dropping keys, truncating
strings, swapping in values of other JSON types and unicode, and from arbitrary JSON.
Each one goes through ``handle()``. The answer is recorded where it would be PUT (the PUT
itself is tested over https in test_studio_teardown.py), and its document is built
exactly as sent. An event that reaches the teardown runs it against the moto server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from studio_teardown import cfn_response
from studio_teardown.cfn_response import ResponseTarget
from studio_teardown.handler import handle
from studio_teardown.teardown import Teardown, TeardownTimeout

from tests.integration.conftest import aws_client
from tests.integration.lambdas.conftest import Clock

URL = "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/r?X-Amz-Signature=a%2F"
ENVELOPE_KEYS = (
    "RequestType",
    "ServiceToken",
    "ResponseURL",
    "StackId",
    "RequestId",
    "LogicalResourceId",
    "ResourceType",
    "PhysicalResourceId",
    "ResourceProperties",
)


def _valid(request_type: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:teardown",
        "ResponseURL": URL,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/mlops-dev-studio/guid",
        "RequestId": "req-1",
        "LogicalResourceId": "Teardown",
        "ResourceType": "Custom::StudioTeardown",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:teardown",
            "DomainId": "d-neverexisted1",
            "TeardownOnDelete": "true",
            "HomeEfsRetention": "Delete",
        },
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = "studio-teardown-d-neverexisted1"
    return event


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    event = _valid(draw(st.sampled_from(["Create", "Update", "Delete"])))
    for _ in range(draw(st.integers(1, 4))):
        holder = event
        if draw(st.booleans()) and isinstance(event.get("ResourceProperties"), dict):
            holder = event["ResourceProperties"]
        if not holder:
            continue
        key = draw(st.sampled_from([*sorted(holder), "TeardownOnDelete", "HomeEfsRetention", "RequestType"]))
        action = draw(st.sampled_from(["drop", "truncate", "replace", "unicode"]))
        if action == "drop":
            holder.pop(key, None)
        elif action == "truncate" and isinstance(holder.get(key), str):
            holder[key] = holder[key][: draw(st.integers(0, max(0, len(holder[key]) - 1)))]
        elif action == "unicode":
            holder[key] = draw(st.text(min_size=1, max_size=40))
        else:
            holder[key] = draw(json_values)
    return event


def _answerable(event: object) -> bool:
    return isinstance(event, dict) and _is_https(event.get("ResponseURL"))


def _is_https(url: object) -> bool:
    try:
        cfn_response.https_url(url)
    except ValueError:
        return False
    return True


class Recorder:
    """Where the handler's answers would be PUT; each is built into the exact document sent."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []

    def __call__(self, target: ResponseTarget, **answer: Any) -> None:
        document = cfn_response.body(target, **answer)
        assert len(document) <= cfn_response.MAX_BODY_BYTES
        self.documents.append(json.loads(document))


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _check_one_answer_or_logged_error(event: object, moto_endpoint: str) -> None:
    recorder, errors = Recorder(), Errors()
    logger = logging.getLogger("studio-teardown")
    logger.addHandler(errors)
    try:
        outcome = handle(event, 900, lambda: aws_client("sagemaker", moto_endpoint), respond=recorder)
    finally:
        logger.removeHandler(errors)
    if _answerable(event):
        (document,) = recorder.documents
        assert document["Status"] in {"SUCCESS", "FAILED"}
        assert document["Status"] == outcome.status
        assert document["Reason"].strip()
        assert document["PhysicalResourceId"]
        if isinstance(event, dict) and event.get("RequestType") == "Delete":
            # Nothing here ever existed: a Delete, however unreadable, must not fail.
            assert document["Status"] == "SUCCESS", document["Reason"]
    else:
        assert recorder.documents == []
        assert outcome.status is None
        assert any("cannot be answered" in message for message in errors.messages)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=mutated_events())
def test_every_mutated_event_gets_exactly_one_answer_or_a_logged_error(moto_endpoint, event) -> None:
    _check_one_answer_or_logged_error(event, moto_endpoint)


@settings(max_examples=150, deadline=None)
@given(event=json_values | st.dictionaries(st.sampled_from(ENVELOPE_KEYS), json_values, max_size=9))
def test_arbitrary_json_gets_exactly_one_answer_or_a_logged_error(moto_endpoint, event) -> None:
    _check_one_answer_or_logged_error(event, moto_endpoint)


@settings(max_examples=100, deadline=None)
@given(url=st.text(max_size=60) | st.from_regex(r"\A(https?|file|ftp)://[^\s]{0,40}\Z"))
def test_only_https_urls_are_answered(moto_endpoint, url) -> None:
    event = {**_valid("Create"), "ResponseURL": url}
    _check_one_answer_or_logged_error(event, moto_endpoint)
    assert not _is_https(url) or url.startswith("https://")


@settings(max_examples=100, deadline=None)
@given(reason=st.text(max_size=6000), physical_id=st.text(min_size=1, max_size=1024))
def test_every_document_fits_cloudformations_limit_and_keeps_what_fits(reason, physical_id) -> None:
    target = ResponseTarget(URL, "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/g", "req-1", "Teardown")
    document = json.loads(cfn_response.body(target, status="FAILED", reason=reason, physical_id=physical_id))
    assert len(json.dumps(document).encode()) <= cfn_response.MAX_BODY_BYTES
    kept = document["Reason"].removesuffix(" [cut]")
    assert reason.startswith(kept)


@settings(max_examples=60, deadline=None)
@given(deadline=st.floats(0, 120), throttles=st.integers(0, 10))
def test_throttling_backoff_never_sleeps_past_the_deadline(deadline: float, throttles: int) -> None:
    client = aws_client("sagemaker", None)
    clock = Clock()
    teardown = Teardown(client, "d-abc123", deadline=deadline, sleep=clock.sleep, clock=clock, log=lambda _: None)
    with Stubber(client) as stub:
        for _ in range(throttles):
            stub.add_client_error("list_apps", service_error_code="ThrottlingException", http_status_code=400)
        stub.add_response("list_apps", {"Apps": []})
        try:
            teardown.call("list_apps", DomainIdEquals="d-abc123")
            outcome = "answered"
        except TeardownTimeout:
            outcome = "deadline"
        except ClientError:
            outcome = "gave up"
    assert clock.now <= deadline
    if outcome == "answered":
        assert len(clock.sleeps) == throttles
    elif outcome == "gave up":
        assert throttles >= teardown.max_attempts
    else:
        # Stopped only because the next wait would have crossed the deadline.
        assert clock.now + min(2.0 ** len(clock.sleeps), 20.0) > deadline or clock.now >= deadline


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@settings(max_examples=40, deadline=None)
@given(
    request_type=st.sampled_from(["Create", "Update", "Delete"]),
    key=st.sampled_from([*ENVELOPE_KEYS, "DomainId", "TeardownOnDelete", "HomeEfsRetention"]),
    value=st.sampled_from(
        [
            "x" * 300_000,  # an event as large as Lambda's 256 KB asynchronous payload allows, and more
            "\u00e9\U0001f600" * 50_000,
            ["d-abc"] * 20_000,
            _nested(500),
            "https://" + "a" * 100_000 + ".example.com/r",
        ]
    ),
)
def test_oversized_and_deeply_nested_values_get_one_answer_or_a_logged_error(
    moto_endpoint, request_type: str, key: str, value: Any
) -> None:
    event = _valid(request_type)
    holder = event if key in ENVELOPE_KEYS else event["ResourceProperties"]
    holder[key] = value
    _check_one_answer_or_logged_error(event, moto_endpoint)
