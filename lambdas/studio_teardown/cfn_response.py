"""Send a custom resource's result to CloudFormation's pre-signed response URL."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def send(
    event: dict[str, Any],
    *,
    status: str,
    reason: str,
    physical_id: str,
    data: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> None:
    """PUT the response document; CloudFormation waits for it.

    Args:
        status: "SUCCESS" or "FAILED".
        reason: shown in the stack events (CloudFormation keeps the first 4 KB).
    """
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3500],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": data or {},
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # the pre-signed URL CloudFormation sent
        response.read()
