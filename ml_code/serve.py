"""Start the model server, as the inference image's ``serve`` command does.

    python -m ml_code.serve --model-dir DIR --port N
        [--capture-dir DIR [--endpoint-name NAME] [--variant NAME] [--sampling-percentage P]]

Workers: SAGEMAKER_MODEL_SERVER_WORKERS, else the CPU count. In the image, ``serve``
runs this with the model SageMaker unpacked at /opt/ml/model, on port 8080. Each worker
answers small requests on its event loop and runs large ones (over 16 KB) on its prediction
thread, holding at most MLOPS_SERVER_MAX_PENDING of them (default 2) before answering 503.

Data capture is off unless asked (in AWS the endpoint captures, not the container): with
``--capture-dir`` (or MLOPS_CAPTURE_DIR, MLOPS_CAPTURE_ENDPOINT, MLOPS_CAPTURE_VARIANT,
MLOPS_CAPTURE_SAMPLING_PERCENTAGE; the flags win) each worker writes SageMaker's data-capture JSONL
for every request it answers with a 200, under DIR/<endpoint>/<variant>/yyyy/mm/dd/hh/ (see
``ml_code.serving.capture``). SIGTERM stops the server gracefully: requests in flight are answered
and captured, then each worker closes its file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from ml_code.artifact import MODEL_FILE, SCHEMA_FILE
from ml_code.environment import (
    DEFAULT_SERVING_PORT,
    MLOPS_CAPTURE_DIR,
    MLOPS_CAPTURE_ENDPOINT,
    MLOPS_CAPTURE_SAMPLING_PERCENTAGE,
    MLOPS_CAPTURE_VARIANT,
    SAGEMAKER_BIND_TO_PORT,
    SM_MODEL_DIR,
    serving_workers,
)
from ml_code.serving.capture import CaptureSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a trained model over SageMaker's HTTP contract.")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get(SM_MODEL_DIR, "/opt/ml/model")))
    parser.add_argument("--port", type=int, default=int(os.environ.get(SAGEMAKER_BIND_TO_PORT, DEFAULT_SERVING_PORT)))
    parser.add_argument("--host", default="0.0.0.0")  # a container listens on all its interfaces
    capture = parser.add_argument_group("data capture (off unless --capture-dir or MLOPS_CAPTURE_DIR is given)")
    capture.add_argument("--capture-dir", type=Path, help="write SageMaker's data-capture JSONL under this directory")
    capture.add_argument("--endpoint-name", help="the endpoint segment of the capture path (default local-endpoint)")
    capture.add_argument("--variant", help="the variant segment of the capture path (default AllTraffic)")
    capture.add_argument(
        "--sampling-percentage", type=int, help="share of answered requests captured, 0-100 (default 100)"
    )
    args = parser.parse_args(argv)
    missing = [name for name in (MODEL_FILE, SCHEMA_FILE) if not (args.model_dir / name).is_file()]
    if missing:
        print(f"error: {args.model_dir}: not a model directory ({', '.join(missing)} missing)", file=sys.stderr)
        return 2
    try:
        workers = serving_workers()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        settings = _capture_settings(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings is not None:
        os.environ.update(settings.as_env())  # the workers read it: they are separate processes
        print(
            f"capturing {settings.sampling_percentage}% of answered requests under "
            f"{settings.directory / settings.endpoint / settings.variant}",
            flush=True,
        )
    os.environ[SM_MODEL_DIR] = str(args.model_dir.resolve())
    os.environ["MLOPS_SERVER_WORKERS"] = str(workers)
    print(f"serving {args.model_dir} on {args.host}:{args.port} with {workers} workers", flush=True)
    uvicorn.run(
        "ml_code.serving.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=workers,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=75,  # above the 60 s idle timeout of SageMaker's front end
    )
    return 0


def _capture_settings(args: argparse.Namespace) -> CaptureSettings | None:
    """The capture settings from the flags over the environment; None when capture is off.

    Raises:
        ValueError: a bad name or percentage, or capture options without a capture directory.
        OSError: the capture directory cannot be created or written.
    """
    overrides = {
        MLOPS_CAPTURE_DIR: args.capture_dir,
        MLOPS_CAPTURE_ENDPOINT: args.endpoint_name,
        MLOPS_CAPTURE_VARIANT: args.variant,
        MLOPS_CAPTURE_SAMPLING_PERCENTAGE: args.sampling_percentage,
    }
    env = {**os.environ, **{k: str(v) for k, v in overrides.items() if v is not None}}
    settings = CaptureSettings.from_env(env)
    if settings is None:
        given = [
            flag
            for flag, value in (
                ("--endpoint-name", args.endpoint_name),
                ("--variant", args.variant),
                ("--sampling-percentage", args.sampling_percentage),
            )
            if value is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)} need --capture-dir (data capture is off without it)")
        return None
    settings.directory.mkdir(parents=True, exist_ok=True)
    if not os.access(settings.directory, os.W_OK | os.X_OK):
        raise PermissionError(f"capture directory {settings.directory} is not writable")
    return settings


if __name__ == "__main__":
    sys.exit(main())
