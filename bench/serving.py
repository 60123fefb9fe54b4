"""Serving benchmark: our server against the canonical bring-your-own-container stack.

    .venv/bin/python bench/serving.py [--model-dir DIR] [--duration 10] [--rounds 2]

Both serve the same trained artifact (trained here on the sample data unless --model-dir
is given) with 2 worker processes, on 127.0.0.1. wrk sends one-row CSV requests at
concurrency 8 (2 threads), alternating between the two servers round by round, so that
machine noise hits both alike. Prints requests per second, p50/p99 latency and errors.
Goal: at least 10x the baseline's requests per second, a lower p99, and 0 errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml_code.serving.readiness import free_port, running_server, wait_for_ping  # noqa: E402

VENV_BIN = Path(sys.executable).parent
ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
WORKERS = 2


@contextlib.contextmanager
def _server(kind: str, model_dir: Path) -> Iterator[int]:
    if kind == "ours":
        with running_server(model_dir, workers=WORKERS) as (port, _):
            yield port
        return
    port = free_port()
    env = {**os.environ, "SM_MODEL_DIR": str(model_dir), "PYTHONPATH": str(ROOT)}
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        str(WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(ROOT / "bench"),
        "--log-level",
        "warning",
        "byoc_baseline_server:app",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ping(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def _wrk(port: int, duration: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{duration}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/invocations"],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "requests": total, "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ml_code.local_run",
                    "--data",
                    str(ROOT / "data" / "abalone.csv"),
                    "--target",
                    "rings",
                    "--problem-type",
                    "regression",
                    "--output",
                    tmp,
                ],
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            model_dir = Path(tmp) / "model"
        script = Path(tmp) / "post.lua"
        script.write_text(f'wrk.method = "POST"\nwrk.body = "{ROW}\\n"\nwrk.headers["Content-Type"] = "text/csv"\n')
        results: dict[str, list[dict[str, float]]] = {"ours": [], "baseline": []}
        for _ in range(args.rounds):
            for kind in ("ours", "baseline"):
                with _server(kind, model_dir) as port:
                    _wrk(port, 2, script)  # warm-up: imports, first-request paths
                    results[kind].append(_wrk(port, args.duration, script))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"load: wrk -t2 -c8, one-row text/csv, {args.rounds} x {args.duration} s per server, alternating; "
        f"{WORKERS} workers each"
    )
    summary = {}
    for kind, label in (("ours", "ours (uvicorn, compiled model)"), ("baseline", "baseline (Flask+gunicorn+pandas)")):
        runs = results[kind]
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        errors = sum(int(r["errors"]) for r in runs)
        summary[kind] = (rps, p99, errors)
        print(f"{label:<36} {rps:9.1f} req/s  p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms  errors {errors}")
    ratio = summary["ours"][0] / summary["baseline"][0]
    print(
        f"throughput ratio: {ratio:.1f}x (goal >= 10x); p99 lower: {summary['ours'][1] < summary['baseline'][1]}; "
        f"errors: {summary['ours'][2]} (goal 0)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
