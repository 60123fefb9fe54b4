"""The server stays live under large legal requests, over real HTTP on 127.0.0.1.

A deliberately heavy model (400 fully grown trees) makes a 6 MB batch request take seconds,
long enough to watch /ping, a second request and a client that hangs up while it runs.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_code.artifact import ModelArtifact
from ml_code.candidates import build_candidate
from ml_code.environment import MAX_PAYLOAD_BYTES
from ml_code.schema import ProblemType, load_dataset
from ml_code.serving.readiness import running_server
from tests.integration.conftest import SAMPLE

# SageMaker fails a /ping that takes longer than 2 s and replaces the instance after repeated failures.
SAGEMAKER_PING_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Abalone with 400 fully grown extra trees: a few seconds for a 6 MB request on this machine."""
    data = load_dataset(SAMPLE, target="rings", problem_type=ProblemType.REGRESSION)
    pipeline = build_candidate(
        data.schema, "extra_trees", {"n_estimators": 400, "min_samples_leaf": 1, "max_features": 1.0}, seed=1, n_jobs=2
    )
    pipeline.fit(data.features, data.target.to_numpy(dtype=float))
    model_dir = tmp_path_factory.mktemp("heavy") / "model"
    ModelArtifact(pipeline, data.schema, {"winner": {"family": "extra_trees"}}).save(model_dir)
    return model_dir


def _batch_body() -> bytes:
    """Sample rows without the target, repeated to just under SageMaker's 6 MB payload limit."""
    rows = [line.rsplit(",", 1)[0] for line in SAMPLE.read_text().splitlines()[1:]]
    block = ("\n".join(rows) + "\n").encode()
    return (block * (MAX_PAYLOAD_BYTES // len(block)))[: MAX_PAYLOAD_BYTES - 1].rsplit(b"\n", 1)[0] + b"\n"


@pytest.fixture(scope="module")
def one_worker(heavy_model: Path) -> Iterator[tuple[int, object]]:
    # One worker that holds one large request at a time: any leftover work shows up as a 503.
    with running_server(heavy_model, workers=1, env={"MLOPS_SERVER_MAX_PENDING": "1"}) as handle:
        yield handle


def _post(port: int, body: bytes, timeout: float = 120) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "text/csv"})
    response = conn.getresponse()
    return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}


def _send_and_hang_up(port: int, body: bytes) -> None:
    """Send a whole CSV request, then close the connection a second later, before the answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        time.sleep(1.0)


def _ping_seconds(port: int) -> float:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAGEMAKER_PING_TIMEOUT * 5)
    conn.request("GET", "/ping")
    assert conn.getresponse().status == 200
    return time.monotonic() - start


def test_ping_answers_within_sagemakers_limit_while_a_6mb_request_runs(one_worker) -> None:
    port, _ = one_worker
    body = _batch_body()
    result: dict[str, object] = {}

    def big() -> None:
        result["started"] = time.monotonic()
        result["status"], result["body"], _ = _post(port, body)
        result["took"] = time.monotonic() - float(result["started"])  # type: ignore[arg-type]

    # Given a 6 MB batch request in flight on the only worker
    worker = threading.Thread(target=big)
    worker.start()
    time.sleep(0.3)
    # When /ping is called repeatedly while it runs
    pings = []
    while worker.is_alive():
        pings.append(_ping_seconds(port))
        time.sleep(0.1)
    worker.join()
    # Then every ping answered within SageMaker's limit, and the big request succeeded
    assert result["status"] == 200
    rows = body.count(b"\n")
    assert len(result["body"].splitlines()) == rows  # type: ignore[union-attr]
    assert len(pings) >= 3, f"the request took only {result['took']:.1f} s: the model is not heavy enough to test"
    assert max(pings) < SAGEMAKER_PING_TIMEOUT, pings


def test_a_second_large_request_gets_503_with_retry_after_while_the_worker_is_full(one_worker) -> None:
    port, _ = one_worker
    body = _batch_body()
    # Given a 6 MB request running on the only worker (its client hangs up once we have looked)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"\r\n" + body)
        time.sleep(0.5)
        # When another large request arrives, Then it is refused at once with a 503 to retry
        started = time.monotonic()
        status, response, headers = _post(port, body[:200_000].rsplit(b"\n", 1)[0] + b"\n")
        refused_in = time.monotonic() - started
    assert status == 503
    assert headers.get("retry-after") == "1"
    assert "server busy" in json.loads(response)["error"]
    assert refused_in < SAGEMAKER_PING_TIMEOUT
    # and while it is busy, /ping is still answered on the event loop
    assert _ping_seconds(port) < SAGEMAKER_PING_TIMEOUT


def test_a_client_that_disconnects_does_not_keep_the_worker_busy(one_worker) -> None:
    port, process = one_worker
    body = _batch_body()
    # Given a client that sends a 6 MB request and hangs up before the answer
    _send_and_hang_up(port, body)
    # When, soon after (well before the abandoned request would have finished), another large request comes
    deadline = time.monotonic() + 30
    small_batch = body[:100_000].rsplit(b"\n", 1)[0] + b"\n"
    while True:
        status, _, _ = _post(port, small_batch)
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # Then the worker took it: the abandoned request was stopped at its next chunk of rows
    assert status == 200
    assert _ping_seconds(port) < SAGEMAKER_PING_TIMEOUT
    assert process.poll() is None  # type: ignore[attr-defined]


def test_the_abandoned_request_was_stopped_not_finished(heavy_model: Path) -> None:
    body = _batch_body()
    with running_server(heavy_model, workers=1, env={"MLOPS_SERVER_MAX_PENDING": "1"}) as (port, process):
        _send_and_hang_up(port, body)
        started = time.monotonic()
        while _post(port, b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15\n" * 500)[0] == 503:
            assert time.monotonic() - started < 30
            time.sleep(0.2)
        process.terminate()
        log = process.communicate(timeout=30)[1]
    rows = body.count(b"\n")
    assert "client disconnected; stopped after" in log
    assert f"of {rows} rows" in log


def test_client_mistakes_leave_no_traceback_in_the_log(heavy_model: Path) -> None:
    bodies = [
        (b"M,1e308,0.3,0.1,0.5,0.2,0.1,0.15\n", "text/csv"),
        (b'{"instances": [["M", NaN, 1, 1, 1, 1, 1, 1]]}', "application/json"),
        (b'{"instances": [["M", 1' + b"0" * 400 + b", 1, 1, 1, 1, 1, 1]]}", "application/json"),
        (b'{"instances": [["M", 1' + b"0" * 5000 + b", 1, 1, 1, 1, 1, 1]]}", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"instances": [{"sex": "M"}]}', "application/json"),
        ("M,\u00e9\u4e2d,\U0001f600\n".encode(), "text/csv"),
        (b"\xff\xfe\x00M", "text/csv"),
        (b'M,"unterminated\n', "text/csv"),
    ]
    with running_server(heavy_model, workers=1) as (port, process):
        for body, ctype in bodies:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/invocations", body=body, headers={"Content-Type": ctype})
            response = conn.getresponse()
            assert response.status == 400, (body[:60], response.read())
            assert json.loads(response.read())["error"]
        assert _ping_seconds(port) < SAGEMAKER_PING_TIMEOUT
        process.terminate()
        log = process.communicate(timeout=30)[1]
    assert "Traceback" not in log


# Bodies a client might send by mistake: random bytes, unicode, JSON of any shape, huge numbers.
_fuzz_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=8) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=30,
    ).map(lambda d: json.dumps({"instances": [d]}).encode()),
)


@given(
    body=_fuzz_bodies,
    ctype=st.sampled_from(["text/csv", "application/json", "text/csv; charset=utf-8", "image/png", ""]),
    attributes=st.sampled_from(["", "probabilities=true", "probabilities=\u00e9", ";;=;"]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_over_http_every_request_is_answered_and_mistakes_are_4xx(one_worker, body, ctype, attributes) -> None:
    port, process = one_worker
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": ctype, "X-Amzn-SageMaker-Custom-Attributes": attributes.encode().decode("latin-1")}
    conn.request("POST", "/invocations", body=body, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    assert response.status == 200 or 400 <= response.status < 500, (response.status, payload)
    if response.status != 200:
        assert json.loads(payload)["error"]
    assert process.poll() is None  # type: ignore[attr-defined]
