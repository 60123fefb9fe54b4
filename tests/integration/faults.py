"""AWS faults injected at the boto3 level, in front of the moto server: botocore's real retry logic runs.

A :class:`FaultInjector` hooks one client's ``before-send`` event, the last step before botocore
puts a request on the wire. For the operations you name, it answers the next attempts with the
faults you queue (one fault per attempt, in order), then lets the requests through to the server.
Everything in between is botocore's own: the error is parsed from the service's wire protocol
(JSON, query XML, REST XML, REST JSON), ``needs-retry`` decides with the client's retry mode
and ``max_attempts``, and the backoff and retry quota apply. So a test sees what the code under
test sees in AWS: a retried throttle that succeeds, or a ``ClientError`` / ``BotoCoreError``
after the last attempt.

Usage::

    from tests.integration.faults import FaultInjector, capped_backoff, lost_response, server_error, throttling

    client = aws_client("sagemaker", moto_endpoint, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    with FaultInjector(client) as faults, capped_backoff() as delays:
        faults.add("StartPipelineExecution", throttling(), server_error(503))  # attempts 1 and 2; 3 goes through
        faults.always("DescribeEndpoint", error("ValidationException", message="Could not find endpoint"))
        code_under_test(client)
    assert faults.attempts["StartPipelineExecution"] == 3
    assert len(delays) == 2  # botocore backed off twice (capped_backoff only shortens the sleeps)
    token = {json.loads(r.body)["ClientRequestToken"] for r in faults.requests["StartPipelineExecution"]}

Faults (each one attempt):

- :func:`throttling` (400 ``ThrottlingException``, or the service's code, e.g. ``Throttling`` for SNS),
  :func:`server_error` (500 ``InternalFailure``, or 502/503/504): retryable in standard mode;
- :func:`error` (any code and status): e.g. ``AccessDeniedException``, ``ValidationException``, or a
  resource that vanished (``ResourceNotFound``): not retried unless the code is transient;
- :func:`connect_timeout`, :func:`read_timeout`: the request never reached the service (botocore
  raises ``ConnectTimeoutError`` / ``ReadTimeoutError``, retryable);
- :func:`lost_response`: the request *is* sent to the server, which acts on it, and then the answer
  is lost as a read timeout: the case that makes a retry a duplicate unless the call is idempotent.
  (moto ignores idempotency tokens such as ``ClientRequestToken``; check the tokens sent instead.)

``attempts`` counts every attempt per operation (faulted or sent); ``requests`` keeps each
attempt's ``AWSPreparedRequest`` (url, headers, body). Operation names are botocore's
(``StartPipelineExecution``, ``PutItem``, ``Publish``); ``"*"`` matches every operation of the client.
To inject into clients the code builds itself, reach them after they exist (a cached factory's
result, ``handler.retrainer().sagemaker``) and wrap them the same way.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.retries import standard

__all__ = [
    "Fault",
    "FaultInjector",
    "capped_backoff",
    "connect_timeout",
    "error",
    "lost_response",
    "read_timeout",
    "server_error",
    "throttling",
]


@dataclass(frozen=True)
class Fault:
    """What one attempt gets instead of the service's answer."""

    kind: str  # "error", "connect_timeout", "read_timeout", "lost_response"
    status: int = 0
    code: str = ""
    message: str = ""


def error(code: str, status: int = 400, message: str = "") -> Fault:
    """An AWS error response with this code and HTTP status, in the client's wire protocol."""
    return Fault("error", status, code, message or f"injected {code}")


def throttling(code: str = "ThrottlingException", status: int = 400) -> Fault:
    """A throttling error (retryable; botocore backs off with its throttling scale)."""
    return error(code, status, "Rate exceeded (injected)")


def server_error(status: int = 500, code: str = "") -> Fault:
    """A 5xx (retryable): 500 InternalFailure, 503 ServiceUnavailable, or another code."""
    default = {500: "InternalFailure", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
    return error(code or default.get(status, "InternalFailure"), status, "injected server error")


def connect_timeout() -> Fault:
    """The connection is never made: the service never sees the request."""
    return Fault("connect_timeout")


def read_timeout() -> Fault:
    """The request times out before the service has it (nothing happened there)."""
    return Fault("read_timeout")


def lost_response() -> Fault:
    """The request reaches the server and is acted on; its answer is lost (a read timeout)."""
    return Fault("lost_response")


class _Body:
    """The raw-stream shape AWSResponse reads a body from."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def error_response(client: Any, request: AWSPreparedRequest, fault: Fault) -> AWSResponse:
    """The HTTP response the service would send for ``fault``, in the client's protocol."""
    model = client.meta.service_model
    protocol = model.resolved_protocol  # the one botocore speaks, of those the service offers
    request_id = f"injected-{random.getrandbits(32):08x}"
    headers = {"x-amzn-requestid": request_id}
    code, message = fault.code, fault.message
    if protocol == "json":
        headers["content-type"] = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"
        if model.metadata.get("awsQueryCompatible") is not None:
            headers["x-amzn-query-error"] = f"{code};Sender"
        body = json.dumps({"__type": code, "message": message}).encode()
    elif protocol == "rest-json":
        headers.update({"content-type": "application/json", "x-amzn-errortype": code})
        body = json.dumps({"message": message}).encode()
    elif protocol == "query":
        headers["content-type"] = "text/xml"
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>{escape(message)}"
            f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    elif protocol == "rest-xml":
        headers.update({"content-type": "application/xml", "x-amz-request-id": request_id})
        body = (
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
    else:  # smithy-rpc-v2-cbor, once botocore prefers it for a service: add its error shape here
        raise NotImplementedError(f"no error shape for protocol {protocol!r}")
    return AWSResponse(request.url, fault.status, headers, _Body(body))


class FaultInjector:
    """Queues faults for one client's operations; see the module docstring."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._queued: dict[str, deque[Fault]] = defaultdict(deque)
        self._always: dict[str, Fault] = {}
        self.attempts: Counter[str] = Counter()
        self.requests: dict[str, list[AWSPreparedRequest]] = defaultdict(list)
        self.injected: list[tuple[str, Fault]] = []  # (operation, fault), in the order they were given
        service = client.meta.service_model.service_id.hyphenize()
        self._event = f"before-send.{service}"
        self._unique_id = f"fault-injector-{id(self)}"
        client.meta.events.register(self._event, self._before_send, unique_id=self._unique_id)

    def add(self, operation: str, *faults: Fault) -> FaultInjector:
        """Answer the next ``len(faults)`` attempts of ``operation`` with these, in order."""
        self._queued[operation].extend(faults)
        return self

    def always(self, operation: str, fault: Fault) -> FaultInjector:
        """Answer every attempt of ``operation`` with ``fault`` (after any queued ones) until :meth:`clear`."""
        self._always[operation] = fault
        return self

    def clear(self, operation: str | None = None) -> None:
        """Stop injecting (into ``operation``, or everywhere); the counts stay."""
        for table in (self._queued, self._always):
            if operation is None:
                table.clear()
            else:
                table.pop(operation, None)

    def close(self) -> None:
        """Unhook from the client: later requests go straight to the server."""
        self.client.meta.events.unregister(self._event, unique_id=self._unique_id)

    def __enter__(self) -> FaultInjector:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _next(self, operation: str) -> Fault | None:
        for key in (operation, "*"):
            if self._queued.get(key):
                return self._queued[key].popleft()
        return self._always.get(operation) or self._always.get("*")

    def _before_send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        self.attempts[operation] += 1
        self.requests[operation].append(request)
        fault = self._next(operation)
        if fault is None:
            return None  # botocore sends it
        self.injected.append((operation, fault))
        if fault.kind == "error":
            return error_response(self.client, request, fault)
        if fault.kind == "connect_timeout":
            raise ConnectTimeoutError(endpoint_url=request.url)
        if fault.kind == "read_timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if fault.kind == "lost_response":
            self.client._endpoint.http_session.send(request)  # the server gets it and acts on it
            raise ReadTimeoutError(endpoint_url=request.url)
        raise ValueError(f"unknown fault {fault.kind!r}")


@contextmanager
def capped_backoff(max_seconds: float = 0.01) -> Iterator[list[float]]:
    """Record the delays botocore's standard retry mode chooses, and sleep at most ``max_seconds`` each.

    Whether to retry, how often and how long to wait stay botocore's decisions; only the sleep is
    shortened, so a suite of fault tests does not wait out real backoff (up to 20 s per retry).
    """
    chosen: list[float] = []
    original = standard.ExponentialBackoff.delay_amount

    def delay_amount(self: standard.ExponentialBackoff, context: Any) -> float:
        delay = float(original(self, context))
        chosen.append(delay)
        return min(delay, max_seconds)

    standard.ExponentialBackoff.delay_amount = delay_amount  # type: ignore[method-assign]
    try:
        yield chosen
    finally:
        standard.ExponentialBackoff.delay_amount = original  # type: ignore[method-assign]
