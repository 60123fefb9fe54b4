"""Starting a model server as a separate process and waiting until it is ready (demo, benchmarks, tests)."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
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


WORKER_READY = re.compile(r"^worker \d+: ready in ", re.M)


def wait_for_workers(log: Path, workers: int, process: subprocess.Popen, timeout: float = 180.0) -> None:
    """Return once ``workers`` workers have written their ``worker <pid>: ready`` line to ``log``.

    /ping answers as soon as one worker is up; a benchmark that starts then sends everything to it.

    Raises:
        RuntimeError: the server exited first.
        TimeoutError: not every worker was ready within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while len(WORKER_READY.findall(log.read_text(errors="replace"))) < workers:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not every one of the {workers} workers became ready: {log}")
        time.sleep(0.2)


def start_server(
    model_dir: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    log: Path | None = None,
    timeout: float = 180.0,
    new_session: bool = False,
) -> tuple[int, subprocess.Popen]:
    """Start ``python -m ml_code.serve`` on a free port and return ``(port, process)`` once it is ready.

    ``env`` adds environment variables (e.g. ``MLOPS_SERVER_MAX_PENDING``) to the server's; ``args``
    adds options (e.g. ``["--capture-dir", DIR]``). Its stderr is a pipe (``process.stderr``), or with
    ``log`` that file, and then every worker is ready on return, not only the first. ``new_session``
    keeps a terminal's Ctrl-C from reaching the server (its owner stops it). The caller stops it; a
    server that does not become ready is killed before the error is raised.
    """
    port = free_port()
    log_file = log.open("w") if log is not None else None
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
        stderr=log_file if log_file is not None else subprocess.PIPE,
        text=True,
        start_new_session=new_session,
    )
    if log_file is not None:
        log_file.close()  # the server holds its own copy
    try:
        wait_for_ping(port, process, timeout=timeout)
        if log is not None:
            wait_for_workers(log, workers, process, timeout=timeout)
    except BaseException:
        stop_server(process)
        raise
    return port, process


def stop_server(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM (the workers finish what they hold, captured, and close their files), then SIGKILL if
    the server has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_server(
    model_dir: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    log: Path | None = None,
) -> Iterator[tuple[int, subprocess.Popen]]:
    """``start_server`` as a context manager: the server is stopped on exit."""
    port, process = start_server(model_dir, workers=workers, env=env, args=args, log=log)
    try:
        yield port, process
    finally:
        stop_server(process)
