"""The ML half of `make demo`: train on the sample data, serve the model, send it a few requests.

    python -m tools.ml_demo [--output build/demo]

Everything runs as a user would run it: `python -m ml_code.local_run`, then
`python -m ml_code.serve` as a separate process, then HTTP requests to it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
from pathlib import Path

from ml_code.serving.readiness import running_server
from tools.sample_model import SAMPLE, local_run_command

ROOT = Path(__file__).resolve().parents[1]


def _post(port: int, body: str, content_type: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/invocations", body=body.encode(), headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.read().decode().strip()


def _ping(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/ping")
    return conn.getresponse().status


def _exercise(port: int) -> None:
    """The requests the demo sends, and what came back."""
    print(f"GET /ping -> {_ping(port)}")
    rows = [line.rsplit(",", 1) for line in SAMPLE.read_text().splitlines()[1:4]]
    csv_body = "\n".join(features for features, _ in rows)
    status, body = _post(port, csv_body, "text/csv")
    print(f"POST text/csv, 3 rows -> {status}")
    for (features, actual), predicted in zip(rows, body.splitlines(), strict=True):
        print(f"   {features:<48} predicted rings {float(predicted):5.2f}  (actual {actual})")
    instance = rows[0][0].split(",")
    status, body = _post(port, json.dumps({"instances": [instance]}), "application/json")
    print(f"POST application/json -> {status} {body}")
    status, body = _post(port, "M,0.455,not-a-number,0.095,0.514,0.2245,0.101,0.15", "text/csv")
    print(f"POST a bad row -> {status} {body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "demo")
    args = parser.parse_args(argv)

    print(f"== training on {SAMPLE.relative_to(ROOT)} (python -m ml_code.local_run)")
    train = subprocess.run(
        local_run_command(args.output),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    print(train.stdout.rstrip())
    if train.returncode != 0:
        print(train.stderr, file=sys.stderr)
        return 1

    print(f"\n== serving {args.output / 'model'} (python -m ml_code.serve, 2 workers)")
    try:
        with running_server(args.output / "model", workers=2) as (port, _):
            print(f"listening on 127.0.0.1:{port}")
            _exercise(port)
    except (RuntimeError, TimeoutError) as exc:
        print(f"server did not start: {exc}", file=sys.stderr)
        return 1
    print(f"(serve it yourself: python -m ml_code.serve --model-dir {args.output / 'model'} --port 8080)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
