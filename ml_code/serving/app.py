"""The ASGI app behind SageMaker's serving contract: GET /ping, POST /invocations.

Kept to plain ASGI (no web framework): two routes, and every microsecond of a
one-row request counts. uvicorn runs it (see ``ml_code.serve``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ml_code.environment import MAX_PAYLOAD_BYTES, SM_MODEL_DIR
from ml_code.serving.inference import (
    LoadedModel,
    RequestError,
    choose_accept,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)

log = logging.getLogger("ml_code.serving")


class InferenceApp:
    """Loads the model at start-up; answers /ping with 200 only once it is loaded."""

    def __init__(self, model_dir: Path, workers: int = 1) -> None:
        self.model_dir = model_dir
        self.workers = workers
        self.model: LoadedModel | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                await _respond(send, 405, b"use GET\n", "text/plain")
            elif self.model is None:
                await _respond(send, 503, b"model not loaded\n", "text/plain")
            else:
                await _respond(send, 200, b"", "text/plain")
            return
        if path == "/execution-parameters" and method == "GET":
            params = {"MaxConcurrentTransforms": self.workers, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}
            await _respond(send, 200, json.dumps(params).encode(), "application/json")
            return
        if path != "/invocations":
            await _respond(send, 404, b"not found: use GET /ping or POST /invocations\n", "text/plain")
            return
        if method != "POST":
            await _respond(send, 405, b"use POST\n", "text/plain")
            return
        await self._invoke(scope, receive, send)

    async def _invoke(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            if self.model is None:
                raise RequestError(503, "model not loaded")
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
                raise RequestError(413, f"body of {declared} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
            accept = choose_accept(headers.get("accept"), headers.get("content-type"))
            body = await _read_body(receive)
            rows = input_fn(body, headers.get("content-type"), self.model)
            predictions = predict_fn(rows, self.model)
            await _respond(send, 200, output_fn(predictions, accept), accept)
        except RequestError as exc:
            await _respond(send, exc.status, json.dumps({"error": exc.message}).encode(), "application/json")
        except Exception:  # a bug of ours, not the client's: 500, and the worker stays up
            log.exception("prediction failed")
            await _respond(send, 500, b'{"error": "internal error"}', "application/json")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.model = model_fn(self.model_dir)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"cannot load model: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _read_body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise RequestError(413, f"body exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> InferenceApp:
    """Factory for uvicorn: the model directory and worker count come from the environment."""
    return InferenceApp(Path(os.environ[SM_MODEL_DIR]), int(os.environ.get("MLOPS_SERVER_WORKERS", "1")))
