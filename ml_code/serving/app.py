"""The ASGI app behind SageMaker's serving contract: GET /ping, POST /invocations.

Kept to plain ASGI (no web framework): two routes, and every microsecond of a
one-row request counts. uvicorn runs it (see ``ml_code.serve``).

/ping must answer within SageMaker's 2 s whatever else runs, or SageMaker replaces the
instance. So the event loop only ever does bounded work: a small request (up to
``INLINE_BYTES``, a few hundred rows, about a millisecond) is answered on the loop, which is
the fastest path for real-time traffic; a larger one is parsed and predicted on the worker's
prediction thread (the compiled trees release the GIL). Each worker holds at most
``MLOPS_SERVER_MAX_PENDING`` large requests (running or queued); beyond that it answers 503 with
Retry-After at once, which SageMaker's clients retry. A large request whose client hangs up
is stopped at its next chunk of rows, so an abandoned 6 MB request does not hold the worker.

With data capture on (``ml_code.serving.capture``; off unless asked, since in AWS the endpoint
captures), each 200 answer is recorded right after it is sent, on the loop: one record per answer,
into this worker's own file, closed when the app shuts down (after uvicorn has finished the
requests in flight on SIGTERM).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from ml_code.environment import MAX_PAYLOAD_BYTES, SM_MODEL_DIR
from ml_code.serving.capture import (
    INFERENCE_ID_HEADER,
    CaptureSettings,
    InvalidInferenceId,
    RequestCapture,
    inference_id,
)
from ml_code.serving.compiled import Cancelled
from ml_code.serving.inference import (
    CUSTOM_ATTRIBUTES_HEADER,
    LoadedModel,
    RequestError,
    choose_accept,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)

log = logging.getLogger("ml_code.serving")

# Bodies up to this size are answered on the event loop (bounded, ~1 ms); larger ones on the prediction thread.
INLINE_BYTES = 16 * 1024
# Large requests one worker accepts at a time (one running, the rest queued); more get a 503.
MAX_PENDING_ENV = "MLOPS_SERVER_MAX_PENDING"
DEFAULT_MAX_PENDING = 2


class InferenceApp:
    """Loads the model at start-up; answers /ping with 200 only once it is loaded."""

    def __init__(
        self,
        model_dir: Path,
        workers: int = 1,
        max_pending: int = DEFAULT_MAX_PENDING,
        load: Callable[[Path], LoadedModel] = model_fn,
        capture: CaptureSettings | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.capture_settings = capture
        self.capture: RequestCapture | None = None  # opened at start-up, in the worker process
        self.load = load  # the model_fn hook, as in SageMaker's inference toolkit
        self.workers = workers
        self.model: LoadedModel | None = None
        self.max_pending = max_pending
        self.pending = 0  # large requests accepted and not finished (running or queued), this worker
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

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
        capture = self.capture
        try:
            if self.model is None:
                raise RequestError(503, "model not loaded")
            caller_id = None
            if capture is not None:
                try:
                    caller_id = inference_id(headers.get(INFERENCE_ID_HEADER))
                except InvalidInferenceId as exc:
                    raise RequestError(400, str(exc)) from None
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
                raise RequestError(413, f"body of {declared} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
            accept = choose_accept(headers.get("accept"), headers.get("content-type"))
            body = await _read_body(receive)
            work = partial(
                _answer, body, headers.get("content-type"), headers.get(CUSTOM_ATTRIBUTES_HEADER), accept, self.model
            )
            answer: bytes | None
            if len(body) <= INLINE_BYTES:
                answer = work(None)
            else:
                answer = await self._offload(work, receive)
                if answer is None:
                    return  # the client is gone: nobody to answer
            await _respond(send, 200, answer, accept)
        except ClientGone:
            return
        except RequestError as exc:
            extra = [(b"retry-after", b"1")] if exc.status == 503 else []
            await _respond(send, exc.status, json.dumps({"error": exc.message}).encode(), "application/json", extra)
            if capture is not None:
                capture.refused += 1
            return
        except Exception:  # a bug of ours, not the client's: 500, and the worker stays up
            log.exception("prediction failed")
            await _respond(send, 500, b'{"error": "internal error"}', "application/json")
            if capture is not None:
                capture.refused += 1
            return
        if capture is not None:
            # After the answer went out: a 200 is what gets a record. content-type is set: else no 200.
            capture.record(body, headers["content-type"], answer, accept, caller_id)

    async def _offload(self, work: Any, receive: Any) -> bytes | None:
        """Run ``work`` on the prediction thread; None when the client disconnected first.

        Raises:
            RequestError: 503 when this worker already holds ``max_pending`` large requests.
        """
        if self.pending >= self.max_pending:
            raise RequestError(
                503, f"server busy: {self.pending} large requests in progress on this worker; retry shortly"
            )
        self.pending += 1
        stop = threading.Event()
        future: Future[bytes] = self._executor.submit(work, stop.is_set)
        # Counted until the thread has really let go of it, not when the client leaves.
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        waiting = asyncio.wrap_future(future)
        disconnect = asyncio.ensure_future(_disconnected(receive))
        racers: set[asyncio.Future[Any]] = {waiting, disconnect}
        done, _ = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            disconnect.cancel()
            try:
                return waiting.result()
            except Cancelled:  # pragma: no cover - only when stop was set, i.e. after a disconnect
                return None
        stop.set()
        waiting.add_done_callback(_log_stopped)
        return None

    def _release(self) -> None:
        self.pending -= 1

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                started = time.monotonic()
                try:
                    self.model = self.load(self.model_dir)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"cannot load model: {exc}"})
                    return
                if self.capture_settings is not None:
                    try:
                        self.capture = RequestCapture(self.capture_settings)
                    except (OSError, ValueError) as exc:
                        await send({"type": "lifespan.startup.failed", "message": f"cannot capture: {exc}"})
                        return
                # One line per worker: /ping answers once any worker is up, this says when each one is.
                sys.stderr.write(f"worker {os.getpid()}: ready in {time.monotonic() - started:.1f} s\n")
                sys.stderr.flush()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # uvicorn sends this once the requests in flight are answered: their records are written.
                if self.capture is not None:
                    self.capture.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class ClientGone(Exception):
    """The client hung up before its whole body arrived: nothing to parse, nobody to answer."""


async def _read_body(receive: Any) -> bytes:
    """The whole request body.

    Raises:
        RequestError: 413 once it exceeds SageMaker's payload limit.
        ClientGone: the client disconnected first (a cut body must not be predicted or captured).
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            raise RequestError(413, f"body exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _answer(
    body: bytes,
    content_type: str | None,
    attributes: str | None,
    accept: str,
    model: LoadedModel,
    should_stop: Any,
) -> bytes:
    if should_stop is not None and should_stop():
        raise Cancelled("stopped before it started")
    request = input_fn(body, content_type, model, attributes)
    return output_fn(predict_fn(request, model, should_stop), accept)


async def _disconnected(receive: Any) -> None:
    """Return when the client has gone (after the body, uvicorn's receive() waits for exactly that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _log_stopped(future: asyncio.Future[bytes]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if isinstance(exc, Cancelled):
        log.warning("client disconnected; %s", exc)
    elif isinstance(exc, RequestError):
        log.warning("client disconnected before its %s answer", exc.status)
    elif exc is not None:
        log.error("prediction failed after the client disconnected: %r", exc)
    else:
        log.warning("client disconnected; the answer was ready but not sent")


async def _respond(
    send: Any, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app() -> InferenceApp:
    """Factory for uvicorn: the model directory, worker count and data capture come from the environment."""
    return InferenceApp(
        Path(os.environ[SM_MODEL_DIR]),
        int(os.environ.get("MLOPS_SERVER_WORKERS", "1")),
        max(1, int(os.environ.get(MAX_PENDING_ENV, str(DEFAULT_MAX_PENDING)))),
        capture=CaptureSettings.from_env(),
    )
