"""Answer CloudFormation: one JSON document PUT to the pre-signed https response URL.

The PUT is retried on connection errors, timeouts, throttling and 5xx (urllib3's Retry, the
library botocore itself uses), and never raises: it returns why it could not deliver.
"""

from __future__ import annotations

import json
from typing import Literal

import urllib3
from urllib3.util import Retry, Timeout

Status = Literal["SUCCESS", "FAILED"]
MAX_REASON = 2000  # the document must stay under CloudFormation's 4 KB


def document(
    *,
    status: Status,
    reason: str,
    physical_id: str,
    stack_id: str,
    request_id: str,
    logical_id: str,
    data: dict[str, str] | None = None,
) -> bytes:
    """The response document, the reason cut to fit."""
    cut = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 6] + " [cut]"
    return json.dumps(
        {
            "Status": status,
            "Reason": cut,
            "PhysicalResourceId": physical_id,
            "StackId": stack_id,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "NoEcho": False,
            "Data": data or {},
        }
    ).encode()


def send(url: str, body: bytes, *, retries: int = 3, backoff_factor: float = 1.0) -> str | None:
    """PUT ``body`` to ``url`` (https only). Returns None when accepted (2xx), otherwise why not."""
    if not url.startswith("https://"):
        return "not delivered: the response URL is not https"
    retry = Retry(
        total=retries,
        backoff_factor=backoff_factor,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"PUT"}),
        redirect=False,  # a pre-signed URL answers itself; the body is not sent elsewhere
        raise_on_status=False,
    )
    try:
        with urllib3.PoolManager(retries=retry, timeout=Timeout(connect=3.0, read=7.0)) as http:
            # Content-Type empty: the URL is signed without one.
            response = http.request(
                "PUT", url, body=body, headers={"Content-Type": "", "Content-Length": str(len(body))}
            )
    except Exception as exc:  # the answer of last resort: report why, never raise
        return f"not delivered: {type(exc).__name__}: {exc}"
    if not 200 <= response.status < 300:
        return f"refused: HTTP {response.status}"
    return None
