"""Data capture inside the model server, for runs where no SageMaker endpoint captures for it.

In AWS the endpoint captures (its ``DataCaptureConfig``), not the container, so this is off
unless asked: ``python -m ml_code.serve --capture-dir DIR`` (or ``MLOPS_CAPTURE_DIR``). Then each
worker process writes SageMaker's data-capture JSONL with :class:`ml_code.monitor.capture.CaptureWriter`
under ``DIR/<endpoint>/<variant>/yyyy/mm/dd/hh/``, one file per worker and hour, which
``python -m ml_code.monitor --data DIR`` reads.

What is captured, and when:

- exactly the requests answered 200, one record each, written right after the answer is handed
  to the socket. A 4xx or 5xx (a client's mistake, a busy worker) is not a prediction: no record,
  counted apart. (SageMaker turns a container's error into a ``ModelError`` for the caller; the
  monitor could not read an error body as the model's output anyway.)
- ``--sampling-percentage P`` (SageMaker's ``InitialSamplingPercentage``, an integer 0-100):
  that share of the answered requests, drawn per request.
- ``eventId``: a new UUID per record; ``inferenceId``: the ``X-Amzn-SageMaker-Inference-Id`` header
  when the caller sends one (InvokeEndpoint's ``InferenceId``: 1 to 64 printable ASCII characters,
  the first not a space; anything else is refused with a 400, as SageMaker's front end refuses it).
- A graceful stop (SIGTERM: uvicorn finishes the requests in flight, then shuts the app down)
  closes each worker's file after its last record and prints one line per worker to stderr:
  ``capture: worker <pid>: <n> answered, <n> captured, ...``. Records are unbuffered in the
  process, so even a killed worker keeps every record it wrote; only a request being answered at
  that instant can lose its record.
- A record that cannot be written (disk full) does not fail the request: SageMaker also stops
  capturing rather than delay inference. The failures are counted and logged once.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ml_code.environment import (
    MLOPS_CAPTURE_DIR,
    MLOPS_CAPTURE_ENDPOINT,
    MLOPS_CAPTURE_SAMPLING_PERCENTAGE,
    MLOPS_CAPTURE_VARIANT,
)
from ml_code.monitor.capture import DEFAULT_VARIANT, CaptureWriter

log = logging.getLogger("ml_code.serving")

DEFAULT_ENDPOINT = "local-endpoint"
# The header InvokeEndpoint's InferenceId travels in (botocore's service model); local clients send it here.
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# InvokeEndpoint's InferenceId: length 1-64, pattern \A\S[\p{Print}]*\z.
MAX_INFERENCE_ID = 64
_INFERENCE_ID = re.compile(rf"[\x21-\x7e][\x20-\x7e]{{0,{MAX_INFERENCE_ID - 1}}}")
_NAME_RULE = "letters, digits and hyphens, 63 at most, starting with a letter or digit"
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class InvalidInferenceId(ValueError):
    """The X-Amzn-SageMaker-Inference-Id header is not an id SageMaker accepts."""


@dataclass(frozen=True)
class CaptureSettings:
    """Where and how much a server captures.

    Attributes:
        directory: the capture prefix (a local directory).
        endpoint, variant: the path segments SageMaker would use.
        sampling_percentage: share of answered requests captured, 0-100.
    """

    directory: Path
    endpoint: str = DEFAULT_ENDPOINT
    variant: str = DEFAULT_VARIANT
    sampling_percentage: int = 100

    def __post_init__(self) -> None:
        for label, name in (("endpoint", self.endpoint), ("variant", self.variant)):
            if not _NAME.match(name):
                raise ValueError(f"capture {label} name {name!r} is not a SageMaker name ({_NAME_RULE})")
        if isinstance(self.sampling_percentage, bool) or not 0 <= self.sampling_percentage <= 100:
            raise ValueError(f"sampling percentage must be an integer from 0 to 100, got {self.sampling_percentage!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CaptureSettings | None:
        """The settings from ``MLOPS_CAPTURE_*`` (default: ``os.environ``); None when capture is off.

        Raises:
            ValueError: a variable is set to something unusable (named).
        """
        env = os.environ if env is None else env
        directory = env.get(MLOPS_CAPTURE_DIR, "")
        if not directory:
            return None
        raw = env.get(MLOPS_CAPTURE_SAMPLING_PERCENTAGE, "") or "100"
        try:
            percentage = int(raw)
        except ValueError:
            raise ValueError(f"{MLOPS_CAPTURE_SAMPLING_PERCENTAGE}={raw!r} is not an integer from 0 to 100") from None
        return cls(
            Path(directory),
            env.get(MLOPS_CAPTURE_ENDPOINT, "") or DEFAULT_ENDPOINT,
            env.get(MLOPS_CAPTURE_VARIANT, "") or DEFAULT_VARIANT,
            percentage,
        )

    def as_env(self) -> dict[str, str]:
        """The variables that give these settings to the server's worker processes."""
        return {
            MLOPS_CAPTURE_DIR: str(self.directory.resolve()),
            MLOPS_CAPTURE_ENDPOINT: self.endpoint,
            MLOPS_CAPTURE_VARIANT: self.variant,
            MLOPS_CAPTURE_SAMPLING_PERCENTAGE: str(self.sampling_percentage),
        }


def inference_id(header: str | None) -> str | None:
    """The caller's InferenceId from its header, or None when the header is absent.

    Raises:
        InvalidInferenceId: not what InvokeEndpoint accepts: 1 to 64 printable ASCII characters
            (``\\A\\S[\\p{Print}]*\\z`` in botocore's service model), the first not a space.
    """
    if header is None:
        return None
    if not _INFERENCE_ID.fullmatch(header):
        try:  # uvicorn hands header bytes over as latin-1: show what the client meant, where it was UTF-8
            shown = header.encode("latin-1").decode("utf-8")
        except UnicodeError:
            shown = header
        shown = shown if len(shown) <= 80 else shown[:60] + f"... ({len(shown)} characters)"
        raise InvalidInferenceId(
            f"X-Amzn-SageMaker-Inference-Id must be 1 to {MAX_INFERENCE_ID} printable ASCII characters, "
            f"the first not a space; got {shown!r}"
        )
    return header


class RequestCapture:
    """One worker's capture: a writer of its own, and counts of what it answered and wrote."""

    def __init__(self, settings: CaptureSettings, *, draw: random.Random | None = None) -> None:
        self.settings = settings
        self.writer = CaptureWriter(settings.directory, settings.endpoint, settings.variant)
        self._draw = draw or random.Random()
        self.answered = 0  # 200s
        self.captured = 0
        self.not_sampled = 0
        self.failed = 0  # records that could not be written
        self.refused = 0  # 4xx/5xx answers: never captured

    def record(
        self,
        body: bytes,
        content_type: str,
        answer: bytes,
        answer_type: str,
        inference_id: str | None,
    ) -> None:
        """Capture one 200 answer (or count it as not sampled); never raises."""
        self.answered += 1
        percentage = self.settings.sampling_percentage
        if percentage < 100 and self._draw.random() * 100 >= percentage:
            self.not_sampled += 1
            return
        try:
            self.writer.write(body, content_type, answer, answer_type, inference_id=inference_id)
        except (OSError, ValueError) as exc:
            self.failed += 1
            if self.failed == 1:
                log.error("data capture failed, requests are still answered: %s", exc)
            return
        self.captured += 1

    def close(self) -> None:
        """Close the worker's file and print what it captured (one line on stderr)."""
        self.writer.close()
        file = self.writer.path
        sys.stderr.write(
            f"capture: worker {os.getpid()}: {self.answered} answered, {self.captured} captured, "
            f"{self.not_sampled} not sampled, {self.failed} failed, {self.refused} refused (4xx/5xx); "
            f"file {file if file is not None else 'none'}\n"
        )
        sys.stderr.flush()
