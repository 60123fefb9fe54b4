"""Start the model server, as the inference image's ``serve`` command does.

    python -m ml_code.serve --model-dir DIR --port N

Workers: SAGEMAKER_MODEL_SERVER_WORKERS, else the CPU count. In the image, ``serve``
runs this with the model SageMaker unpacked at /opt/ml/model, on port 8080. Each worker
answers small requests on its event loop and runs large ones (over 16 KB) on its prediction
thread, holding at most MLOPS_SERVER_MAX_PENDING of them (default 2) before answering 503.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from ml_code.artifact import MODEL_FILE, SCHEMA_FILE
from ml_code.environment import DEFAULT_SERVING_PORT, SAGEMAKER_BIND_TO_PORT, SM_MODEL_DIR, serving_workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a trained model over SageMaker's HTTP contract.")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get(SM_MODEL_DIR, "/opt/ml/model")))
    parser.add_argument("--port", type=int, default=int(os.environ.get(SAGEMAKER_BIND_TO_PORT, DEFAULT_SERVING_PORT)))
    parser.add_argument("--host", default="0.0.0.0")  # a container listens on all its interfaces
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


if __name__ == "__main__":
    sys.exit(main())
