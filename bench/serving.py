"""Serving benchmark: our server against the canonical bring-your-own-container stack, with an ablation.

    .venv/bin/python bench/serving.py [--model-dir DIR] [--duration 8] [--rounds 2] [--capture]
                                      [--sizes 1,100,10000,100000] [--skip-wrk] [--skip-batch]

Every server serves the same trained artifact (trained here on the sample data unless
--model-dir is given) with 2 worker processes, on 127.0.0.1:

- ours: uvicorn, our ASGI app, the compiled model (``python -m ml_code.serve``);
- baseline: the canonical Flask + gunicorn server, pandas parsing, scikit-learn's predict
  (bench/byoc_baseline_server.py);
- ablation (bench/serving_ablation.py): Flask + gunicorn with our handlers and compiled model,
  and uvicorn with our app but scikit-learn predicting. Their ratios split the gain between
  the server and the predictor;
- with ``--capture``, also ours with data capture on (``--capture-dir``: a record per answer),
  in the same alternating rounds, to show what capture costs.

1. One-row requests: wrk at concurrency 8 (2 threads), the servers alternating round by round
   so that machine noise hits all alike. Goal: p99 <= 5 ms, >= 50x the baseline's req/s, 0 errors.
2. Multi-record requests (batch transform sends up to 6 MB): rows/s for each size over HTTP
   (ours, baseline), beside scikit-learn's own vectorized ``predict`` on the same fitted pipeline
   in-process (already-parsed DataFrame, n_jobs=1). Goal: a 5 MB request in <= 1 s, faster than
   the baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml_code.serving.readiness import free_port, running_server, wait_for_ping  # noqa: E402
from tools.sample_model import local_run_command  # noqa: E402

VENV_BIN = Path(sys.executable).parent
ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
WORKERS = 2
KINDS = {
    "ours": "ours (uvicorn, compiled model)",
    "baseline": "baseline (Flask+gunicorn, sklearn)",
    "flask-compiled": "ablation: Flask+gunicorn, compiled model",
    "uvicorn-sklearn": "ablation: uvicorn, sklearn predict",
}


CAPTURE_KIND = "ours-capture"
CAPTURE_LABEL = "ours, data capture on"


@contextlib.contextmanager
def _server(kind: str, model_dir: Path) -> Iterator[int]:
    if kind in ("ours", CAPTURE_KIND):
        # With a log, running_server waits for every worker, not only the first that answers /ping.
        with tempfile.TemporaryDirectory() as work:
            args = ["--capture-dir", f"{work}/capture"] if kind == CAPTURE_KIND else []
            with running_server(model_dir, workers=WORKERS, args=args, log=Path(work) / "server.log") as (port, _):
                yield port
        return
    port = free_port()
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(model_dir),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}",
        "MLOPS_SERVER_WORKERS": str(WORKERS),
        "SERVING_ABLATION": kind,
    }
    if kind == "uvicorn-sklearn":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "serving_ablation:create_sklearn_app",
            "--workers",
            str(WORKERS),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    else:
        app = "byoc_baseline_server:app" if kind == "baseline" else "serving_ablation:compiled_flask_app"
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "300",
            "--log-level",
            "warning",
            app,
        ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT / "bench", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_ping(port, proc, timeout=120)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
    if not all(re.search(p, out, re.M) for p in (r"Requests/sec", r"^\s+50%\s+(\S+)\s*$", r"^\s+99%\s+(\S+)\s*$")):
        raise RuntimeError(f"wrk gave no result on port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {"rps": rps, "p50": p50, "p99": p99, "requests": total, "errors": errors}


def _one_row(model_dir: Path, tmp: Path, duration: int, rounds: int, capture: bool) -> None:
    script = tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = "{ROW}\\n"\nwrk.headers["Content-Type"] = "text/csv"\n')
    kinds = {**KINDS, **({CAPTURE_KIND: CAPTURE_LABEL} if capture else {})}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind in kinds:
            with _server(kind, model_dir) as port:
                _wrk(port, 2, script)  # warm-up: imports, first-request paths
                results[kind].append(_wrk(port, duration, script))
    print(
        f"\n1. One-row requests: wrk -t2 -c8, text/csv, {rounds} x {duration} s per server, alternating; "
        f"{WORKERS} workers each (medians)"
    )
    summary = {}
    for kind, label in kinds.items():
        runs = results[kind]
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        errors = sum(int(r["errors"]) for r in runs)
        summary[kind] = rps
        print(f"  {label:<44} {rps:9.1f} req/s  p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms  errors {errors}")
    base = summary["baseline"]
    print(f"  ours / baseline: {summary['ours'] / base:.1f}x the throughput (goal >= 50x; p99 goal <= 5 ms)")
    print(
        f"  ablation: the compiled predictor alone (Flask) {summary['flask-compiled'] / base:.1f}x; "
        f"the server alone (sklearn) {summary['uvicorn-sklearn'] / base:.1f}x; "
        f"the server on top of the compiled model {summary['ours'] / summary['flask-compiled']:.1f}x"
    )
    if capture:
        print(f"  data capture on / off: {summary[CAPTURE_KIND] / summary['ours']:.3f}x the throughput")


def _body(rows: int) -> bytes:
    sample = [line.rsplit(",", 1)[0] for line in (ROOT / "data" / "abalone.csv").read_text().splitlines()[1:]]
    repeated = (sample * (rows // len(sample) + 1))[:rows]
    return ("\n".join(repeated) + "\n").encode()


def _post_seconds(port: int, body: bytes) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    response = conn.getresponse()
    payload = response.read()
    took = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {payload[:200]!r}")
    return took


def _batch(model_dir: Path, sizes: list[int], repeats: int) -> None:
    import pandas as pd

    from ml_code.artifact import ModelArtifact

    artifact = ModelArtifact.load(model_dir)
    for _, step in artifact.pipeline.steps:
        for estimator in [step, *getattr(step, "estimators_", [])]:
            if hasattr(estimator, "n_jobs"):
                estimator.set_params(n_jobs=1)
    names = artifact.schema.feature_names
    bodies = {n: _body(n) for n in sizes}
    timings: dict[str, dict[int, float]] = {"ours": {}, "baseline": {}, "sklearn": {}, "sklearn+parse": {}}
    for n, body in bodies.items():
        frame = pd.read_csv(io.BytesIO(body), header=None, names=names)
        runs, parsed = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            artifact.pipeline.predict(frame)
            runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            artifact.pipeline.predict(pd.read_csv(io.BytesIO(body), header=None, names=names))
            parsed.append(time.perf_counter() - start)
        timings["sklearn"][n] = statistics.median(runs)
        timings["sklearn+parse"][n] = statistics.median(parsed)
    for kind in ("ours", "baseline"):
        with _server(kind, model_dir) as port:
            _post_seconds(port, bodies[sizes[0]])
            for n, body in bodies.items():
                timings[kind][n] = statistics.median(_post_seconds(port, body) for _ in range(repeats))
    print(f"\n2. Multi-record text/csv requests, one at a time, median of {repeats}: rows/s (seconds per request)")
    header = "  " + f"{'rows per request':<44}" + "".join(f"{n:>22,}" for n in sizes)
    print(header)
    print("  " + f"{'body size':<44}" + "".join(f"{len(bodies[n]) / 1e6:>19.3f} MB" for n in sizes))
    labels = {
        "ours": "ours over HTTP (parse, predict, answer)",
        "baseline": "baseline over HTTP (Flask, pandas, sklearn)",
        "sklearn": "sklearn predict in-process (parsed frame)",
        "sklearn+parse": "sklearn read_csv + predict in-process",
    }
    for kind, label in labels.items():
        cells = "".join(f"{n / timings[kind][n]:>12,.0f} ({timings[kind][n]:6.3f}s)" for n in sizes)
        print(f"  {label:<44}{cells}")
    largest = sizes[-1]
    print(
        f"  largest ({len(bodies[largest]) / 1e6:.1f} MB): ours {timings['ours'][largest]:.2f} s "
        f"(goal <= 1 s for 5 MB), baseline {timings['baseline'][largest]:.2f} s, "
        f"{timings['baseline'][largest] / timings['ours'][largest]:.1f}x faster"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", default="1,100,10000,100000,120000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-wrk", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--capture", action="store_true", help="also ours with data capture on")
    args = parser.parse_args()
    if not args.skip_wrk and not shutil.which("wrk"):
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            subprocess.run(
                local_run_command(tmp),
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            model_dir = Path(tmp) / "model"
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        winner = json.loads((Path(model_dir) / "metadata.json").read_text()).get("winner", {})
        print(f"model: {json.dumps(winner)}")
        if not args.skip_wrk:
            _one_row(Path(model_dir), Path(tmp), args.duration, args.rounds, args.capture)
        if not args.skip_batch:
            _batch(Path(model_dir), [int(s) for s in args.sizes.split(",")], args.repeats)
        print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
