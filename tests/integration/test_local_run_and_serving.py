"""Train on the sample data with the real CLI, serve it with the real server, talk to it over HTTP."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, SAMPLE

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"
ROW2 = "F,0.53,0.42,0.135,0.677,0.2565,0.1415,0.21"


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


def test_local_run_writes_the_documented_outputs(trained_run) -> None:
    out, stdout = trained_run
    for name in (
        "model/model.joblib",
        "model/schema.json",
        "model/metadata.json",
        "evaluation.json",
        "predictions.csv",
        "run.json",
        "baseline/statistics.json",
        "baseline/constraints.json",
        "leaderboard.json",
    ):
        assert (out / name).is_file(), name
    for family in ("linear", "extra_trees", "xgboost"):
        assert family in stdout
    assert "winner:" in stdout and "training took" in stdout and "test metrics: mse" in stdout
    rmse = json.loads((out / "evaluation.json").read_text())["regression_metrics"]["rmse"]["value"]
    assert 1.5 < rmse < 2.6  # Abalone's ring count: ~2.1 is typical for a good model
    stats = json.loads((out / "baseline" / "statistics.json").read_text())
    # Model Monitor's layout: the model's output first, then the features in training order.
    assert [f["name"] for f in stats["features"]][:3] == ["predicted_rings", "sex", "length"]
    assert "rings" not in [f["name"] for f in stats["features"]]


def test_local_run_reports_bad_data_by_step_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(SAMPLE.read_text().replace("M,0.455,", "M,abc,", 1))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_code.local_run",
            "--data",
            str(bad),
            "--target",
            "rings",
            "--problem-type",
            "regression",
            "--output",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "preprocess failed:" in result.stderr
    assert "column 'length' is numeric but has text at line 2 (first: 'abc')" in result.stderr


def test_ping_and_predictions_over_csv_and_json(server) -> None:
    port, _ = server
    assert request(port, "GET", "/ping")[0] == 200
    status, ctype, body = request(
        port, "POST", "/invocations", f"{ROW}\n{ROW2}\n".encode(), {"Content-Type": "text/csv"}
    )
    assert (status, ctype) == (200, "text/csv")
    values = [float(v) for v in body.decode().splitlines()]
    assert len(values) == 2 and all(3 < v < 25 for v in values)
    status, ctype, body = request(
        port,
        "POST",
        "/invocations",
        json.dumps({"instances": [ROW.split(",")]}).encode(),
        {"Content-Type": "application/json"},
    )
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body)["predictions"] == [pytest.approx(values[0])]


def test_served_predictions_equal_the_trained_pipelines(server, trained_run) -> None:
    from ml_code.artifact import ModelArtifact
    from ml_code.schema import ProblemType, load_dataset

    port, _ = server
    artifact = ModelArtifact.load(trained_run[0] / "model")
    data = load_dataset(SAMPLE, target="rings", problem_type=ProblemType.REGRESSION, schema=artifact.schema)
    expected = artifact.predict_encoded(data.features.iloc[:50])
    lines = SAMPLE.read_text().splitlines()[1:51]
    body = "\n".join(line.rsplit(",", 1)[0] for line in lines).encode()
    status, _, response = request(port, "POST", "/invocations", body, {"Content-Type": "text/csv"})
    assert status == 200
    # XGBoost's own output is float32 (7 significant digits); the compiled trees sum in float64.
    assert [float(v) for v in response.decode().split()] == pytest.approx(list(expected), rel=1e-6)


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"", {"Content-Type": "text/csv"}, 400, "body is empty"),
        (b"M,0.4\n", {"Content-Type": "text/csv"}, 400, "expected 8 columns"),
        (ROW.replace("0.455", "abc").encode(), {"Content-Type": "text/csv"}, 400, "'abc' is not a number"),
        (b"{oops", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        (b'{"rows": []}', {"Content-Type": "application/json"}, 400, '"instances"'),
        (ROW.encode(), {"Content-Type": "text/plain"}, 415, "unsupported Content-Type"),
        (ROW.encode(), {}, 415, "unsupported Content-Type"),
        (ROW.encode(), {"Content-Type": "text/csv", "Accept": "application/xml"}, 406, "unsupported Accept"),
        (ROW.replace("0.455", "1e308").encode(), {"Content-Type": "text/csv"}, 400, "row 1, column 'length'"),
        (ROW.replace("0.455", "1e999").encode(), {"Content-Type": "text/csv"}, 400, "is not a finite number"),
        (b'{"instances": [["M", NaN, 1, 1, 1, 1, 1, 1]]}', {"Content-Type": "application/json"}, 400, "NaN"),
        (
            b'{"instances": [["M", 1' + b"0" * 400 + b", 1, 1, 1, 1, 1, 1]]}",
            {"Content-Type": "application/json"},
            400,
            "too large for a float",
        ),
        (
            b'{"instances": [["M", 1' + b"0" * 5000 + b", 1, 1, 1, 1, 1, 1]]}",
            {"Content-Type": "application/json"},
            400,
            "a number is too long",
        ),
        (b"[" * 5000 + b"]" * 5000, {"Content-Type": "application/json"}, 400, "nested too deeply"),
        (b'{"instances": [{"sex": "M"}]}', {"Content-Type": "application/json"}, 400, "row 1: missing columns"),
        (
            ROW.encode(),
            {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes": "probabilities=true"},
            400,
            "only for classifiers",
        ),
    ],
)
def test_client_mistakes_are_4xx_with_a_message(server, body, headers, status, message) -> None:
    port, _ = server
    got, ctype, response = request(port, "POST", "/invocations", body, headers)
    assert got == status
    assert ctype == "application/json"
    assert message in json.loads(response)["error"]


def test_oversized_body_is_413(server) -> None:
    port, _ = server
    body = (ROW + "\n").encode() * (6 * 1024 * 1024 // len(ROW) + 10)
    assert len(body) > 6 * 1024 * 1024
    status, _, response = request(port, "POST", "/invocations", body, {"Content-Type": "text/csv"})
    assert status == 413
    assert "6291456-byte limit" in json.loads(response)["error"]


def test_wrong_method_and_path(server) -> None:
    port, _ = server
    assert request(port, "GET", "/invocations")[0] == 405
    assert request(port, "POST", "/ping")[0] == 405
    assert request(port, "GET", "/nothing")[0] == 404


def test_server_stays_healthy_after_every_bad_request(server) -> None:
    port, proc = server
    for body in (b"", b"\xff", b"x" * 100, b"{", b'{"instances": 5}'):
        for ctype in ("text/csv", "application/json", "nope/nope"):
            assert 400 <= request(port, "POST", "/invocations", body, {"Content-Type": ctype})[0] < 500
    assert proc.poll() is None
    assert request(port, "GET", "/ping")[0] == 200
    assert request(port, "POST", "/invocations", ROW.encode(), {"Content-Type": "text/csv"})[0] == 200


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def test_worker_count_comes_from_sagemaker_variable(trained_run) -> None:
    from ml_code.serving.readiness import running_server

    with running_server(trained_run[0] / "model", workers=3) as (port, proc):
        # uvicorn spawns its workers with multiprocessing; its resource tracker is not a worker.
        workers = [k for k in _children(proc.pid) if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()]
        assert len(workers) == 3
        assert request(port, "GET", "/execution-parameters")[2] == (
            b'{"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}'
        )


def test_serve_refuses_a_directory_without_a_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ml_code.serve", "--model-dir", str(tmp_path), "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not a model directory (model.joblib, schema.json missing)" in result.stderr
