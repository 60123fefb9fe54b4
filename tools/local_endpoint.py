"""SageMaker's runtime API for a model server on this machine: ``invoke_endpoint`` over HTTP to ``ml_code.serve``.

The deploy's smoke test calls ``invoke_endpoint`` on a ``sagemaker-runtime`` client. Offline there is no
endpoint to call (moto answers with a canned body), so tests and ``make demo`` give the deploy this
client instead: it sends the same request to a real ``python -m ml_code.serve`` and answers as botocore
does, a model's 4xx/5xx becoming ``ClientError`` ``ModelError`` with ``OriginalStatusCode``.
"""

from __future__ import annotations

import http.client
import io
from typing import Any

from botocore.exceptions import ClientError


class LocalRuntime:
    """``invoke_endpoint`` for endpoints served locally: endpoint name -> port of its server."""

    def __init__(self, ports: dict[str, int] | None = None, timeout: float = 30.0) -> None:
        self.ports = dict(ports or {})
        self.timeout = timeout

    def invoke_endpoint(
        self, *, EndpointName: str, Body: bytes, ContentType: str = "text/csv", Accept: str = "text/csv", **extra: Any
    ) -> dict[str, Any]:
        port = self.ports.get(EndpointName)
        if port is None:
            raise ClientError(
                {
                    "Error": {"Code": "ValidationError", "Message": f"Endpoint {EndpointName} not found."},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "InvokeEndpoint",
            )
        headers = {"Content-Type": ContentType, "Accept": Accept}
        if "CustomAttributes" in extra:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = extra["CustomAttributes"]
        if "InferenceId" in extra:
            headers["X-Amzn-SageMaker-Inference-Id"] = extra["InferenceId"]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        try:
            connection.request("POST", "/invocations", body=Body, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise ClientError(
                {
                    "Error": {"Code": "ModelError", "Message": body.decode("utf-8", "replace")[:1000]},
                    "OriginalStatusCode": response.status,
                    "ResponseMetadata": {"HTTPStatusCode": 424},
                },
                "InvokeEndpoint",
            )
        return {"Body": io.BytesIO(body), "ContentType": response.getheader("Content-Type", Accept)}
