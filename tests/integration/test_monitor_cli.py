"""The baseline step with a trained model, the model server's own answers captured, and `python -m ml_code.monitor`.

A model is trained through its SageMaker contract; the baseline step profiles its predictions first,
then the features (Model Monitor's layout); requests go through the serving handlers and are captured
with CaptureWriter; the monitor, run as a process, reads that capture against that baseline.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ml_code import baseline, preprocess, train
from ml_code.monitor import CaptureWriter
from ml_code.serving.inference import input_fn, model_fn, output_fn, predict_fn
from tests.datasets import make_frame, write_csv

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("monitor")
    pre = work / "pre"
    write_csv(pre / "input" / "data" / "data.csv", make_frame("binary", rows=400))
    assert preprocess.main(["--target", "y", "--problem-type", "binary"], env={"SM_PROCESSING_ROOT": str(pre)}) == 0
    splits = pre / "output"
    ml_root = work / "ml"
    (ml_root / "input" / "config").mkdir(parents=True)
    (ml_root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps(
            {
                "target": "y",
                "problem_type": "binary",
                "families": "linear",
                "max_trials": "1",
                "time_budget_seconds": "20",
            }
        )
    )
    env = {
        "SM_ML_ROOT": str(ml_root),
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_MODEL_DIR": str(work / "model"),
        "SM_OUTPUT_DATA_DIR": str(ml_root / "output" / "data"),
    }
    assert train.main(env) == 0
    job = work / "baseline-job"
    (job / "train").mkdir(parents=True)
    for f in (splits / "train").iterdir():
        (job / "train" / f.name).write_bytes(f.read_bytes())
    (job / "model").mkdir()
    for f in (work / "model").iterdir():
        (job / "model" / f.name).write_bytes(f.read_bytes())
    assert baseline.main(env={"SM_PROCESSING_ROOT": str(job)}) == 0
    return {"work": work, "model": work / "model", "baseline": job / "baseline", "train": splits / "train"}


def test_the_baseline_puts_the_models_prediction_first_then_the_features(trained: dict[str, Path]) -> None:
    statistics = json.loads((trained["baseline"] / "statistics.json").read_text())
    constraints = json.loads((trained["baseline"] / "constraints.json").read_text())
    assert [f["name"] for f in statistics["features"]] == ["predicted_y", "a", "b", "colour"]
    assert [f["name"] for f in constraints["features"]] == ["predicted_y", "a", "b", "colour"]
    prediction = statistics["features"][0]
    assert prediction["inferred_type"] == "String"  # a classifier answers with its labels
    labels = {b["value"] for b in prediction["string_statistics"]["distribution"]["categorical"]["buckets"]}
    assert labels <= {"no", "yes"}
    assert constraints["features"][0]["string_constraints"]["domains"] == sorted(labels)


def _capture_the_training_rows(trained: dict[str, Path], root: Path, content_type: str) -> Path:
    model = model_fn(trained["model"])
    train_csv = next(trained["train"].glob("*.csv")).read_text().splitlines()
    header, rows = train_csv[0].split(","), list(csv.reader(train_csv[1:]))
    target = header.index("y")
    writer = CaptureWriter(root, "churn", clock=lambda: datetime(2026, 11, 23, 19, tzinfo=UTC))
    for row in rows:
        features = [v for i, v in enumerate(row) if i != target]
        if content_type == "text/csv":
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(features)
            body = buffer.getvalue().encode()
        else:
            body = json.dumps({"instances": [features]}).encode()
        answer = output_fn(predict_fn(input_fn(body, content_type, model), model), content_type)
        writer.write(body, content_type, answer, content_type)
    return root


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_the_servers_captured_traffic_matches_its_own_baseline(
    trained: dict[str, Path], tmp_path: Path, content_type: str
) -> None:
    capture = _capture_the_training_rows(trained, tmp_path / "capture", content_type)
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ml_code.monitor",
            "--baseline",
            str(trained["baseline"]),
            "--data",
            str(capture),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and "data quality: 0 violations" in done.stdout
    assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}
    metrics = json.loads((out / "metrics.json").read_text())
    # The same rows through the server: every column, the prediction included, lines up at distance 0.
    assert metrics == {f"feature_baseline_drift_{c}": 0.0 for c in ("predicted_y", "a", "b", "colour")}


def test_violations_exit_zero_and_unreadable_input_exits_one_naming_the_line(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    capture = tmp_path / "capture.jsonl"
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": "9,99,purple",
                "encoding": "CSV",
            },
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "maybe", "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": "e"},
        "eventVersion": "0",
    }
    capture.write_text(json.dumps(record) + "\n")
    command = [
        sys.executable,
        "-m",
        "ml_code.monitor",
        "--baseline",
        str(trained["baseline"]),
        "--output",
        str(tmp_path / "out"),
    ]
    done = subprocess.run([*command, "--data", str(capture)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    assert "categorical_values_check: predicted_y, colour" in done.stdout
    capture.write_text(json.dumps(record) + "\n{broken\n")
    done = subprocess.run([*command, "--data", str(capture)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {capture}: line 2: not a JSON record")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2 and "--data" in done.stderr
