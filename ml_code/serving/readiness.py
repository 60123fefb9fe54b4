"""Starting a model server as a separate process and waiting until it is ready (demo, benchmarks, tests)."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_ping(port: int, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Return once GET /ping answers 200.

    Raises:
        RuntimeError: the server process exited first (with its stderr, when captured).
        TimeoutError: no 200 within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}: {stderr}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"server on port {port} never answered /ping with 200")


@contextlib.contextmanager
def running_server(
    model_dir: Path, *, workers: int = 2, env: dict[str, str] | None = None, args: list[str] | None = None
) -> Iterator[tuple[int, subprocess.Popen]]:
    """``python -m ml_code.serve`` as a separate process on a free port, ready; stopped on exit.

    ``env`` adds environment variables (e.g. ``MLOPS_SERVER_MAX_PENDING``) to the server's; ``args``
    adds options (e.g. ``["--capture-dir", DIR]``).
    """
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ml_code.serve",
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            *(args or []),
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_ping(port, process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
