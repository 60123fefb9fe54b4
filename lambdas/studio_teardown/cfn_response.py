"""Send a custom resource's result to CloudFormation's pre-signed response URL.

CloudFormation waits (up to an hour) for one document PUT to the URL it sent. The PUT is
retried on connection errors, timeouts, throttling and 5xx, with a bounded time per try,
and never raises: it returns why it could not deliver, for the handler to log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

# botocore's HTTP client; the Lambda runtime has it wherever it has boto3. Its Retry is made for this job.
import urllib3
from urllib3.util import Retry, Timeout

Status = Literal["SUCCESS", "FAILED"]
MAX_BODY_BYTES = 4096  # CloudFormation rejects larger response documents
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 7.0
RETRIES = 3
BACKOFF_FACTOR = 1.0  # urllib3 waits 0, then 2, then 4 s between the 4 tries
# The longest one answer can take: every try timing out, plus the waits. The handler keeps this in reserve.
WORST_CASE_SECONDS = (RETRIES + 1) * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + sum(
    BACKOFF_FACTOR * 2**n for n in range(1, RETRIES)
)


def https_url(value: object) -> str:
    """Check a response URL: CloudFormation's are pre-signed https URLs; anything else is refused.

    ``file://`` (which urllib would read as a local file), ``http://`` and other schemes are not
    an answer channel: the handler logs them instead of writing there.

    Raises:
        ValueError: not a string, not https, no host, a bad port, or characters no URL holds.
    """
    if not isinstance(value, str):
        raise ValueError(f"ResponseURL must be a string, got {type(value).__name__}")
    if not value.isascii() or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("ResponseURL holds whitespace, control or non-ASCII characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- parsing the port raises on one out of range
    except ValueError as exc:
        raise ValueError(f"ResponseURL is not a URL: {exc}") from None
    if parts.scheme != "https":
        raise ValueError(f"ResponseURL must be https, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise ValueError("ResponseURL has no host")
    return value


@dataclass(frozen=True)
class ResponseTarget:
    """Where and as what to answer: the URL and the identifiers CloudFormation matches the answer with."""

    url: str
    stack_id: str
    request_id: str
    logical_resource_id: str


def body(
    target: ResponseTarget, *, status: Status, reason: str, physical_id: str, data: dict[str, str] | None = None
) -> bytes:
    """The response document, cut to fit in 4 KB: the reason first.

    Identifiers are cut only when they alone overflow, which CloudFormation's never do (its
    stack ids, request ids and logical ids are ASCII and short): a malformed event's answer
    still fits and still says what was wrong.
    """
    ids = [physical_id, target.stack_id, target.request_id, target.logical_resource_id]

    def encode(text: str) -> bytes:
        physical, stack, request, logical = ids
        return json.dumps(
            {
                "Status": status,
                "Reason": text,
                "PhysicalResourceId": physical,
                "StackId": stack,
                "RequestId": request,
                "LogicalResourceId": logical,
                "NoEcho": False,
                "Data": data or {},
            }
        ).encode()  # ensure_ascii: every byte counted is a byte sent

    document = encode(reason)
    if len(document) <= MAX_BODY_BYTES:
        return document
    limit = 1024
    while len(encode("")) + len(" [cut]") > MAX_BODY_BYTES:
        limit //= 2
        ids = [value[:limit] for value in ids]
    room = MAX_BODY_BYTES - len(encode("")) - len(" [cut]")
    kept, used = [], 0
    for ch in reason:
        size = len(json.dumps(ch)) - 2  # escaped size: a quote is 2 bytes, a non-ASCII char 6 or 12
        if used + size > room:
            break
        kept.append(ch)
        used += size
    return encode("".join(kept) + " [cut]")


def send(
    target: ResponseTarget,
    *,
    status: Status,
    reason: str,
    physical_id: str,
    data: dict[str, str] | None = None,
    retries: int | None = None,
    backoff_factor: float | None = None,
    timeout: Timeout | None = None,
) -> str | None:
    """PUT the response document, retrying what can pass on a second try. Never raises.

    Args:
        target: the URL (checked by ``https_url``) and the event's identifiers.
        status: "SUCCESS" or "FAILED".
        reason: shown in the stack events.
        physical_id: the resource's physical id.
        data: attributes for ``Fn::GetAtt``.
        retries, backoff_factor, timeout: bounds of the PUT; the module's constants by default.

    Returns:
        None when CloudFormation's endpoint accepted the document (2xx), otherwise why not.
    """
    document = body(target, status=status, reason=reason, physical_id=physical_id, data=data)
    retries = RETRIES if retries is None else retries
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=retries,
        redirect=False,  # a pre-signed URL answers itself; a redirect is not followed elsewhere with the body
        backoff_factor=BACKOFF_FACTOR if backoff_factor is None else backoff_factor,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"PUT"}),
        raise_on_status=False,
    )
    try:
        https_url(target.url)
        with urllib3.PoolManager(
            retries=retry, timeout=timeout or Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS)
        ) as http:
            # Content-Type empty: the URL is signed without one.
            response = http.request(
                "PUT", target.url, body=document, headers={"Content-Type": "", "Content-Length": str(len(document))}
            )
    except Exception as exc:  # the answer of last resort: report why, never raise
        return f"not delivered: {type(exc).__name__}: {exc}"
    if not 200 <= response.status < 300:
        return f"refused: HTTP {response.status} {_snippet(response.data)}"
    return None


def _snippet(data: Any) -> str:
    return bytes(data or b"")[:300].decode("utf-8", "replace")
