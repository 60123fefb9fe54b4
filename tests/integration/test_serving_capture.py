"""The model server's data capture over real HTTP: several workers, SIGTERM mid-run, and the monitor reading it.

Each test starts ``python -m ml_code.serve`` with capture on, talks to it from several threads
(CSV, JSON, multi-row, a body large enough for the prediction thread, mistakes), stops it with
SIGTERM, and compares three counts kept apart: the 200s the clients received, the answers each
worker says it gave (its last line on stderr), and the records in the files. Then
``python -m ml_code.monitor`` reads the files, with ground truth joined by inferenceId.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ml_code.serving.readiness import running_server
from tests.integration.conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow

ROWS = [line.rsplit(",", 1) for line in SAMPLE.read_text().splitlines()[1:]]  # (features, rings)
STATS = re.compile(
    r"^capture: worker (\d+): (\d+) answered, (\d+) captured, (\d+) not sampled, (\d+) failed, (\d+) refused "
    r"\(4xx/5xx\); file (.+)$",
    re.M,
)


def _records(root: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def _stats(stderr: str) -> list[dict]:
    return [
        {
            "pid": int(m[1]),
            "answered": int(m[2]),
            "captured": int(m[3]),
            "not_sampled": int(m[4]),
            "failed": int(m[5]),
            "refused": int(m[6]),
            "file": m[7],
        }
        for m in STATS.finditer(stderr)
    ]


def _stop(process: subprocess.Popen, log: Path | None = None) -> str:
    """SIGTERM, then the server's stderr (or its ``log``) once it has exited by itself (graceful: no kill follows)."""
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    if log is not None:
        stderr = log.read_text()
    # One worker: uvicorn re-raises the signal after its graceful shutdown; several: the supervisor exits 0.
    assert process.returncode in (0, -signal.SIGTERM), stderr
    return stderr


class Client:
    """One thread's keep-alive connection; remembers what each answered request sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(self, body: bytes, content_type: str, inference_id: str | None = None) -> int:
        headers = {"Content-Type": content_type}
        if inference_id is not None:
            headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
        self.conn.request("POST", "/invocations", body=body, headers=headers)
        response = self.conn.getresponse()
        response.read()
        return response.status

    def post_retrying(self, body: bytes, content_type: str, inference_id: str | None, statuses: Counter) -> int:
        """Retry a 503 (a worker full of large requests says Retry-After), as SageMaker's clients do."""
        while (status := self.post(body, content_type, inference_id)) == 503:
            statuses[503] += 1
            time.sleep(0.1)
        return status


def _mixed_traffic(port: int, thread: int, sent: dict[str, list[str]], statuses: Counter, lock: threading.Lock) -> None:
    """Per thread: 1-row CSV, 2-row JSON, 400-row CSV (over 16 KB: the prediction thread), and mistakes."""
    client = Client(port)
    retried: Counter = Counter()
    for i in range(30):
        rid: str | None = f"t{thread}-{i}"
        picks = [ROWS[(thread * 97 + i * 7 + k) % len(ROWS)] for k in range(400)]
        kind = i % 5
        if kind == 0:
            body, ctype, labels = picks[0][0].encode(), "text/csv", [picks[0][1]]
        elif kind == 1:
            rows = [p[0].split(",") for p in picks[:2]]
            body = json.dumps({"instances": [[r[0], *map(float, r[1:])] for r in rows]}).encode()
            ctype, labels = "application/json", [p[1] for p in picks[:2]]
        elif kind == 2:
            body, ctype = ("\n".join(p[0] for p in picks) + "\n").encode(), "text/csv"
            labels = [p[1] for p in picks]
        elif kind == 3:
            body, ctype, labels = b"M,not-a-number,1,1,1,1,1,1\n", "text/csv", []  # a 400: never captured
        else:
            body, ctype, labels, rid = picks[0][0].encode(), "text/csv", [], None  # no id: joined by eventId
        status = client.post_retrying(body, ctype, rid, retried)
        with lock:
            statuses[status] += 1
            if status == 200 and rid is not None:
                sent[rid] = labels
    with lock:
        statuses.update(retried)


def test_every_answer_is_captured_once_by_each_worker_and_the_monitor_reads_it(trained_run, tmp_path: Path) -> None:
    run_dir, _ = trained_run
    capture = tmp_path / "capture"
    args = ["--capture-dir", str(capture), "--endpoint-name", "abalone-local", "--variant", "blue"]
    sent: dict[str, list[str]] = {}
    statuses: Counter = Counter()
    lock = threading.Lock()
    # Given a server with two workers capturing, and four clients sending mixed traffic
    log = tmp_path / "server.log"  # and every worker is ready before the traffic starts, not only the first
    with running_server(run_dir / "model", workers=2, args=args, log=log) as (port, process):
        threads = [threading.Thread(target=_mixed_traffic, args=(port, t, sent, statuses, lock)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # When the server is stopped with SIGTERM
        stderr = _stop(process, log)
    assert (statuses[200], statuses[400]) == (96, 24), statuses
    # Then each worker says what it answered and captured, into a file of its own
    stats = _stats(stderr)
    assert len(stats) == 2 and len({s["pid"] for s in stats}) == 2, stderr
    ready = {int(pid) for pid in re.findall(r"^worker (\d+): ready in \d+\.\d s$", stderr, re.M)}
    assert ready == {s["pid"] for s in stats}  # each worker said when it was up
    assert sum(s["answered"] for s in stats) == statuses[200]
    assert sum(s["refused"] for s in stats) == statuses[400] + statuses[503]
    assert all(s["captured"] == s["answered"] and s["failed"] == s["not_sampled"] == 0 for s in stats)
    files = sorted(capture.rglob("*.jsonl"))
    assert sorted(Path(s["file"]) for s in stats if s["captured"]) == files
    for s in stats:
        if s["captured"]:
            lines = Path(s["file"]).read_text().splitlines()
            assert len(lines) == s["captured"] and all(json.loads(line) for line in lines)  # whole lines only
    assert all(f.relative_to(capture).parts[:2] == ("abalone-local", "blue") for f in files)
    # and the records are exactly the 200s: one each, none of the 400s, every caller's id kept
    records = _records(capture)
    assert len(records) == statuses[200]
    assert len({r["eventMetadata"]["eventId"] for r in records}) == len(records)
    ids = [r["eventMetadata"]["inferenceId"] for r in records if "inferenceId" in r["eventMetadata"]]
    assert sorted(ids) == sorted(sent)
    # When the monitor reads the capture, with ground truth for the requests that sent an id
    truth = tmp_path / "ground-truth" / "labels.jsonl"
    truth.parent.mkdir()
    truth.write_text(
        "".join(
            json.dumps(
                {"groundTruthData": {"data": "\n".join(labels), "encoding": "CSV"}, "eventMetadata": {"eventId": rid}}
            )
            + "\n"
            for rid, labels in sent.items()
        )
    )
    out = tmp_path / "monitor"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_code.monitor",
            "--baseline",
            str(run_dir / "baseline"),
            "--data",
            str(capture),
            "--output",
            str(out),
            "--ground-truth",
            str(truth.parent),
            "--problem-type",
            "regression",
            "--evaluation",
            str(run_dir / "evaluation.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it reads every row of every record, and joins every labelled one
    assert done.returncode == 0, done.stderr
    rows = 4 * 6 * (1 + 2 + 400 + 1)  # 4 threads x 6 of each answered kind: 1, 2, 400 rows, 1 row without id
    labelled = sum(len(v) for v in sent.values())
    assert f"monitor: {rows} rows ({len(records)} records)" in done.stdout
    assert f"model quality: {labelled} labelled rows" in done.stdout
    quality = json.loads((out / "model_quality" / "statistics.json").read_text())
    assert quality["dataset"]["item_count"] == labelled
    # Every captured column lined up with the baseline's, the model's output first (no extra or missing column).
    metrics = json.loads((out / "metrics.json").read_text())
    features = json.loads((run_dir / "baseline" / "statistics.json").read_text())["features"]
    assert [k for k in metrics if k.startswith("feature_baseline_drift_")] == [
        f"feature_baseline_drift_{f['name']}" for f in features
    ]
    checks = {
        v["constraint_check_type"] for v in json.loads((out / "constraint_violations.json").read_text())["violations"]
    }
    assert checks <= {"baseline_drift_check"}  # repeated rows may drift; nothing is missing, extra or mistyped


def _hammer(port: int, name: str, answered: list[str], stop: threading.Event) -> None:
    """One-row requests on one keep-alive connection until the server goes away."""
    client, i = Client(port), 0
    while not stop.is_set():
        rid = f"{name}-{i}"
        try:
            status = client.post(ROWS[i % len(ROWS)][0].encode(), "text/csv", rid)
        except (OSError, http.client.HTTPException):
            try:  # the server closed this connection (shutting down): one more try on a new one
                client = Client(port)
                status = client.post(ROWS[i % len(ROWS)][0].encode(), "text/csv", rid)
            except (OSError, http.client.HTTPException):
                return
        if status == 200:
            answered.append(rid)
        i += 1


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_mid_run_loses_and_duplicates_no_record(trained_run, tmp_path: Path, workers: int) -> None:
    capture = tmp_path / "capture"
    answered: list[str] = []
    stop = threading.Event()
    log = tmp_path / "server.log"
    with running_server(trained_run[0] / "model", workers=workers, args=["--capture-dir", str(capture)], log=log) as (
        port,
        process,
    ):
        # Given clients sending as fast as the server answers
        threads = [threading.Thread(target=_hammer, args=(port, f"c{n}", answered, stop)) for n in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        assert answered, "no request was answered before the stop"
        # When SIGTERM arrives while requests are in flight
        stderr = _stop(process, log)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    # Then every 200 a client received has exactly one record, and there is no other record
    records = _records(capture)
    ids = Counter(r["eventMetadata"]["inferenceId"] for r in records)
    assert not [rid for rid, n in ids.items() if n > 1], "duplicated records"
    assert set(answered) == set(ids), (len(answered), len(ids))
    stats = _stats(stderr)
    assert len(stats) == workers
    assert sum(s["answered"] for s in stats) == sum(s["captured"] for s in stats) == len(records)


def test_capture_is_off_by_default_and_the_inference_id_header_is_then_ignored(trained_run, tmp_path: Path) -> None:
    with running_server(trained_run[0] / "model", workers=1) as (port, process):
        # An id SageMaker would refuse: without capture the server does not read the header at all.
        status = Client(port).post(ROWS[0][0].encode(), "text/csv", "x" * 65)
        stderr = _stop(process)
    assert status == 200
    assert "capture:" not in stderr


def test_an_inference_id_sagemaker_would_refuse_is_a_400_naming_the_header(trained_run, tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    with running_server(trained_run[0] / "model", workers=1, args=["--capture-dir", str(capture)]) as (port, process):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST",
            "/invocations",
            body=ROWS[0][0].encode(),
            headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "x" * 65},
        )
        response = conn.getresponse()
        error = json.loads(response.read())["error"]
        stderr = _stop(process)
    assert response.status == 400
    assert "X-Amzn-SageMaker-Inference-Id must be 1 to 64 printable ASCII characters" in error
    assert _records(capture) == []
    assert _stats(stderr)[0]["refused"] == 1


# --- whatever a client sends, with capture on: a 200 and its one record, or a 4xx and none -----------------

_header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=70
)
_csv_rows = st.lists(st.sampled_from([r[0] for r in ROWS[:50]]), min_size=1, max_size=5)


def _mostly(*usual: str | None) -> st.SearchStrategy[str | None]:
    common = st.sampled_from(usual)
    return st.integers(0, 3).flatmap(lambda pick: _header_text if pick == 3 else common)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[bytes, str]:
    """A body and its Content-Type: mostly well-formed and matching (so that many are answered), else anything."""
    kind = draw(st.sampled_from(["csv", "csv", "json", "json", "bytes", "text"]))
    if kind == "csv":
        body = ("\n".join(draw(_csv_rows)) + "\n").encode()
    elif kind == "json":
        rows = [x.split(",") for x in draw(_csv_rows)]
        body = json.dumps({"instances": [[c[0], *map(float, c[1:])] for c in rows]}).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    else:
        body = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    matching = {"csv": ["text/csv", "text/csv; charset=utf-8", "TEXT/CSV"], "json": ["application/json"]}
    if kind in matching and draw(st.integers(0, 9)) < 7:
        return body, draw(st.sampled_from(matching[kind]))
    return body, draw(st.sampled_from(["text/csv", "application/json", "", "image/png"]) | _header_text)


@pytest.fixture(scope="module")
def capturing_server(trained_run, tmp_path_factory: pytest.TempPathFactory):
    capture = tmp_path_factory.mktemp("fuzz-capture")
    # One worker: a request's record is written before the worker handles the next request (the /ping).
    with running_server(trained_run[0] / "model", workers=1, args=["--capture-dir", str(capture)]) as (port, process):
        yield port, process, capture


def _send_cut(port: int, body: bytes, headers: dict[str, str]) -> None:
    """Send the headers and part of the body, then hang up: the server must neither answer nor capture."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 7}\r\n{head}\r\n".encode("latin-1")
            + body
        )


@given(
    request=_requests(),
    # Each header: three times as often one of the usual values (or none) as any latin-1 text.
    accept=_mostly(None, None, "*/*", "text/csv", "application/json", "image/png", "text/*"),
    attributes=_mostly(None, None, None, None, None, None, "probabilities=true", "probabilities=maybe"),
    inference_id=_mostly(None, "unique", "unique"),
    cut=st.sampled_from([False, False, False, True]),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_every_request_is_a_200_with_one_record_or_a_4xx_with_none(
    capturing_server, request, accept, attributes, inference_id, cut
) -> None:
    port, process, capture = capturing_server
    body, content_type = request
    before = len(_records(capture))
    headers = {"Content-Type": content_type}
    for name, value in (("Accept", accept), ("X-Amzn-SageMaker-Custom-Attributes", attributes)):
        if value is not None:
            headers[name] = value
    if inference_id is not None:
        headers["X-Amzn-SageMaker-Inference-Id"] = (
            f"fuzz-{before}-{time.monotonic_ns()}" if inference_id == "unique" else inference_id
        )
    if cut:
        _send_cut(port, body, headers)
        status = None
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/invocations", body=body, headers=headers)
        response = conn.getresponse()
        status, answer = response.status, response.read()
        assert status == 200 or status in (400, 406, 415), (status, answer)
        if status != 200:
            assert json.loads(answer)["error"]
    event(f"status {status}")  # --hypothesis-show-statistics: how many were answered, refused, cut
    # The server is still up and answers /ping (and, one worker, has written the record by then)
    ping = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ping.request("GET", "/ping")
    assert ping.getresponse().status == 200 and process.poll() is None
    records = _records(capture)
    if status == 200:
        (record,) = records[before:]
        captured = record["captureData"]
        assert captured["endpointOutput"]["data"] == answer.decode()  # exactly what was answered
        assert captured["endpointInput"]["data"] == body.decode()  # a 200 means the body was UTF-8 CSV or JSON
        sent = headers.get("X-Amzn-SageMaker-Inference-Id")
        assert record["eventMetadata"].get("inferenceId", None) == (sent.strip(" \t") if sent else None)
    else:
        assert records[before:] == []  # a refused or cut-off request leaves no record


def test_after_the_fuzz_the_workers_count_matches_the_records(capturing_server) -> None:
    _, process, capture = capturing_server
    stderr = _stop(process)
    (stats,) = _stats(stderr)
    assert stats["answered"] == stats["captured"] == len(_records(capture))
