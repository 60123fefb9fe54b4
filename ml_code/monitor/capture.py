"""SageMaker's data-capture format: one JSON line per invocation, written and read.

A record, as an endpoint with data capture writes it to S3::

    {"captureData": {
        "endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                           "data": "M,0.455,0.365", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                           "data": "9.87", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<caller's id, optional>",
                       "inferenceTime": "2026-11-23T19:00:00Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` when the content type is one the endpoint's
``CaptureContentTypeHeader`` lists as CSV or JSON (by default ``text/csv`` and
``application/json``), and ``BASE64`` otherwise, the data then being the body in base64.
Files sit under ``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/`` (UTC hour of the invocation).

:class:`CaptureWriter` writes that format, for a server that is not a SageMaker endpoint (the local
demo); :func:`decode_payload` reads one side of a record back for ``ml_code.monitor``.
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import re
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

DEFAULT_CSV_CONTENT_TYPES = ("text/csv",)
DEFAULT_JSON_CONTENT_TYPES = ("application/json",)
DEFAULT_VARIANT = "AllTraffic"
# SageMaker's pattern for endpoint and variant names; it also keeps them safe as path segments.
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def media_type(content_type: str | None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def encode_payload(
    body: bytes,
    content_type: str,
    mode: str,
    *,
    csv_content_types: Iterable[str] = DEFAULT_CSV_CONTENT_TYPES,
    json_content_types: Iterable[str] = DEFAULT_JSON_CONTENT_TYPES,
) -> dict[str, str]:
    """One side of a capture record (``endpointInput`` or ``endpointOutput``), encoded as SageMaker does.

    Args:
        body: the request or response body, as sent.
        content_type: its Content-Type header, kept as observed.
        mode: ``INPUT`` or ``OUTPUT``.
        csv_content_types, json_content_types: the content types captured as text.
    """
    kind = media_type(content_type)
    encoding = "BASE64"
    if kind in {media_type(t) for t in csv_content_types}:
        encoding = "CSV"
    elif kind in {media_type(t) for t in json_content_types}:
        encoding = "JSON"
    data: str
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"  # not text after all: keep every byte
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


@dataclass(frozen=True)
class Payload:
    """One side of a capture record, decoded: its media type, body as text, and format (CSV, JSON or None)."""

    media_type: str
    text: str
    format: str | None  # from the encoding; for base64 data, from the content type; None when neither says


def _format_of(kind: str) -> str | None:
    if kind in {media_type(t) for t in DEFAULT_CSV_CONTENT_TYPES}:
        return "CSV"
    if kind in {media_type(t) for t in DEFAULT_JSON_CONTENT_TYPES}:
        return "JSON"
    return None


def decode_payload(side: Any, where: str) -> Payload:
    """Read ``endpointInput`` or ``endpointOutput`` of a record; base64 data is decoded.

    Args:
        side: the JSON object of that side.
        where: ``file: line N: endpointInput``, for error messages.

    Raises:
        ValueError: a missing field, a field of the wrong type, an unknown encoding, bad base64 or a
            body that is not UTF-8 text.
    """
    if not isinstance(side, dict):
        raise ValueError(f"{where} must be an object")
    data, encoding, content_type = side.get("data"), side.get("encoding"), side.get("observedContentType")
    if not isinstance(data, str):
        raise ValueError(f"{where}.data must be a string")
    if content_type is not None and not isinstance(content_type, str):
        raise ValueError(f"{where}.observedContentType must be a string, got {type(content_type).__name__}")
    kind = media_type(content_type)
    encoding_name = encoding.upper() if isinstance(encoding, str) else encoding
    if encoding_name == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}.data is not valid base64") from None
        try:
            return Payload(kind, raw.decode("utf-8"), _format_of(kind))
        except UnicodeDecodeError:
            raise ValueError(
                f"{where}.data decodes to bytes that are not UTF-8 text ({kind or 'no content type'})"
            ) from None
    if encoding_name in ("CSV", "JSON"):
        # SageMaker writes CSV or JSON exactly for the content types the endpoint lists as such.
        return Payload(kind, data, encoding_name)
    raise ValueError(f"{where}.encoding must be CSV, JSON or BASE64, got {encoding!r}")


_last_second: tuple[int, str] = (-1, "")


def _utc_second(when: datetime) -> str:
    """``2026-11-23T19:00:00Z``; formatted once per second (a server captures thousands a second)."""
    global _last_second
    second = int(when.timestamp())
    cached = _last_second  # one tuple, read and replaced whole: safe across threads
    if cached[0] != second:
        cached = (second, when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        _last_second = cached
    return cached[1]


def capture_record(
    request: dict[str, str],
    response: dict[str, str],
    *,
    event_id: str,
    inference_time: datetime,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """A whole capture record from its two encoded sides."""
    metadata: dict[str, str] = {"eventId": event_id}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = _utc_second(inference_time)
    return {
        "captureData": {"endpointInput": request, "endpointOutput": response},
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


class CaptureWriter:
    """Appends capture records under ``root/<endpoint>/<variant>/yyyy/mm/dd/hh/``, as SageMaker lays them out.

    Each writer has its own file per hour (``mm-ss-mmm-<uuid>.jsonl``, like SageMaker's), so several
    server processes never write into one file. The file stays open between records (a server writes
    thousands a second); every record is one complete line handed to the kernel in one ``write`` with
    no buffer in the process, so a record written survives the process being killed. :meth:`close`
    (or leaving a ``with`` block) closes the file; a writer dropped unclosed closes it when collected.
    """

    def __init__(
        self,
        root: Path,
        endpoint: str,
        variant: str = DEFAULT_VARIANT,
        *,
        csv_content_types: Iterable[str] = DEFAULT_CSV_CONTENT_TYPES,
        json_content_types: Iterable[str] = DEFAULT_JSON_CONTENT_TYPES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Args:
        root: the capture prefix (a local directory).
        endpoint, variant: names as SageMaker allows them (letters, digits, hyphens; 63 at most).
        csv_content_types, json_content_types: captured as text; any other content type as base64.
        clock: the time of each invocation (UTC).

        Raises:
            ValueError: an endpoint or variant name SageMaker would refuse.
        """
        for label, name in (("endpoint", endpoint), ("variant", variant)):
            if not _NAME.match(name):
                raise ValueError(f"{label} name {name!r} is not a SageMaker name (letters, digits and hyphens)")
        self.root = root
        self.endpoint = endpoint
        self.variant = variant
        self._csv = tuple(csv_content_types)
        self._json = tuple(json_content_types)
        self._clock = clock
        # Event ids: random UUIDs from a generator seeded once from os.urandom, not a system call each.
        self._ids = random.Random()
        self._lock = threading.Lock()
        self._hour: tuple[int, int, int, int] | None = None
        self._file: Path | None = None
        self._fd: int | None = None
        self._close_fd: weakref.finalize | None = None  # closes the file if the writer is dropped unclosed
        self._closed = False

    @property
    def path(self) -> Path | None:
        """The file the last record went to (None before the first)."""
        return self._file

    def _fd_for(self, when: datetime) -> tuple[int, Path]:
        hour = (when.year, when.month, when.day, when.hour)
        if hour != self._hour or self._fd is None or self._file is None:
            folder = self.root / self.endpoint / self.variant / f"{when:%Y/%m/%d/%H}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{when:%M-%S}-{when.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            # Captured payloads can be personal data: readable by the server's user only.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._release()
            self._fd, self._file, self._hour = fd, path, hour
            self._close_fd = weakref.finalize(self, os.close, fd)
        return self._fd, self._file

    def _release(self) -> None:
        if self._close_fd is not None:
            self._close_fd()  # closes the fd, once
        self._fd, self._close_fd = None, None

    def write(
        self,
        request_body: bytes,
        request_content_type: str,
        response_body: bytes,
        response_content_type: str,
        *,
        inference_id: str | None = None,
        event_id: str | None = None,
    ) -> Path:
        """Capture one invocation; returns the file it went to.

        Args:
            request_body, request_content_type: what the client sent.
            response_body, response_content_type: what the model answered.
            inference_id: the caller's id for this inference (SageMaker's ``InferenceId``), used to
                join ground truth later.
            event_id: the record's own id; a new UUID by default.

        Raises:
            ValueError: the writer is closed.
            OSError: the file cannot be created or written (the record is not captured).
        """
        when = self._clock().astimezone(UTC)
        record = capture_record(
            encode_payload(
                request_body, request_content_type, "INPUT", csv_content_types=self._csv, json_content_types=self._json
            ),
            encode_payload(
                response_body,
                response_content_type,
                "OUTPUT",
                csv_content_types=self._csv,
                json_content_types=self._json,
            ),
            event_id=event_id or str(uuid.UUID(int=self._ids.getrandbits(128), version=4)),
            inference_time=when,
            inference_id=inference_id,
        )
        # orjson: a tenth of json.dumps' time, the same compact UTF-8 line (the server writes one per request).
        line = memoryview(orjson.dumps(record) + b"\n")
        with self._lock:
            if self._closed:
                raise ValueError("the capture writer is closed")
            fd, path = self._fd_for(when)
            while line:  # one write() for a regular file; the loop only guards against a short write
                line = line[os.write(fd, line) :]
        return path

    def close(self) -> None:
        """Close the current file; later writes raise. Safe to call twice."""
        with self._lock:
            self._closed = True
            self._release()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
