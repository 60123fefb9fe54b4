"""Model quality: ground truth joined to captured predictions as Model Monitor joins it, scored and compared."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from ml_code.monitor import CaptureWriter, MonitorInputError, monitor
from ml_code.schema import ProblemType
from tests.unit.ml.test_monitor_data_quality import write_baseline

WHEN = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def _baseline(directory: Path, prediction_kind: str, predictions: list) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"pred": predictions, "a": rng.normal(0, 1, len(predictions)).round(4)})
    return write_baseline(directory, frame, {"pred": prediction_kind, "a": "numeric"})


def _evaluation(directory: Path, key: str, values: dict[str, float], classes: list[str] | None = None) -> None:
    body: dict = {name: {"value": value, "standard_deviation": "NaN"} for name, value in values.items()}
    if classes:
        body["confusion_matrix"] = {c: dict.fromkeys(classes, 1) for c in classes}
    (directory / "evaluation.json").write_text(json.dumps({key: body}))


def _truth(path: Path, labels: dict[str, str], encoding: str = "CSV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, label in labels.items():
        data = base64.b64encode(label.encode()).decode() if encoding == "BASE64" else label
        lines.append(
            json.dumps(
                {
                    "groundTruthData": {"data": data, "encoding": encoding},
                    "eventMetadata": {"eventId": key},
                    "eventVersion": "0",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(out: Path) -> tuple[dict, list]:
    statistics = json.loads((out / "model_quality" / "statistics.json").read_text())
    violations = json.loads((out / "model_quality" / "constraint_violations.json").read_text())["violations"]
    return statistics, violations


def test_regression_joins_by_inference_id_else_event_id_and_scores_the_pairs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    baseline = _baseline(tmp_path / "baseline", "numeric", list(rng.normal(10, 2, 500).round(3)))
    _evaluation(baseline, "regression_metrics", {"rmse": 1.0, "mae": 0.8})
    writer = CaptureWriter(tmp_path / "capture", "ep", clock=lambda: WHEN)
    truth: dict[str, str] = {}
    pairs: list[tuple[float, float]] = []
    for i in range(200):
        predicted, actual, a = float(rng.normal(10, 2)), 0.0, float(rng.normal())
        actual = predicted + float(rng.normal(0, 1))
        inference_id = f"inf-{i}" if i % 2 else None
        event_id = f"ev-{i}"
        writer.write(
            f"{a}".encode(),
            "text/csv",
            f"{predicted}".encode(),
            "text/csv",
            inference_id=inference_id,
            event_id=event_id,
        )
        if i < 150:  # the rest have no label yet
            truth[inference_id or event_id] = repr(actual)
            pairs.append((actual, predicted))
    truth["ev-1"] = "999"  # record 1 has an inferenceId: its eventId must not be joined
    monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=_truth(tmp_path / "gt" / "a.jsonl", truth))
    statistics, violations = _read(tmp_path / "out")
    y_true, y_pred = np.array(pairs).T
    assert statistics["dataset"]["item_count"] == 150
    scores = statistics["regression_metrics"]
    assert scores["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert scores["mae"]["value"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert scores["r2"]["value"] == pytest.approx(skm.r2_score(y_true, y_pred))
    assert violations == []  # errors of about 1, as registered
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["rmse"] == scores["rmse"]["value"]


def test_a_degraded_regression_model_violates_greater_than_threshold(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    baseline = _baseline(tmp_path / "baseline", "numeric", list(rng.normal(10, 2, 500).round(3)))
    _evaluation(baseline, "regression_metrics", {"rmse": 1.0, "mae": 0.8})
    writer = CaptureWriter(tmp_path / "capture", "ep", clock=lambda: WHEN)
    truth = {}
    for i in range(100):
        predicted = float(rng.normal(10, 2))
        writer.write(b"0.1", "text/csv", f"{predicted}".encode(), "text/csv", event_id=f"e{i}")
        truth[f"e{i}"] = repr(predicted + float(rng.normal(0, 3)))  # errors of about 3
    monitor(
        baseline,
        tmp_path / "capture",
        tmp_path / "out",
        ground_truth=_truth(tmp_path / "gt.jsonl", truth),
        tolerance=0.2,
    )
    _, violations = _read(tmp_path / "out")
    assert {v["metric_name"] for v in violations} == {"rmse", "mae"}
    rmse = next(v for v in violations if v["metric_name"] == "rmse")
    assert rmse["constraint_check_type"] == "GreaterThanThreshold"
    assert "GreaterThanThreshold 1.2 (registered 1, tolerance 20%" in rmse["description"]


def test_a_binary_classifier_is_scored_on_labels_and_violates_less_than_threshold(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline", "categorical", ["no", "yes"] * 100)
    _evaluation(baseline, "binary_classification_metrics", {"accuracy": 0.9, "f1": 0.9, "auc": 0.95}, ["no", "yes"])
    writer = CaptureWriter(tmp_path / "capture", "ep", clock=lambda: WHEN)
    truth = {}
    for i in range(40):
        predicted = "yes" if i % 2 else "no"
        writer.write(
            json.dumps({"instances": [[0.1]]}).encode(),
            "application/json",
            json.dumps({"predictions": [predicted]}).encode(),
            "application/json",
            event_id=f"e{i}",
        )
        truth[f"e{i}"] = predicted if i < 20 else ("no" if predicted == "yes" else "yes")  # half wrong
    monitor(
        baseline,
        tmp_path / "capture",
        tmp_path / "out",
        ground_truth=_truth(tmp_path / "gt.jsonl", truth, encoding="BASE64"),
    )
    statistics, violations = _read(tmp_path / "out")
    scores = statistics["binary_classification_metrics"]
    assert scores["accuracy"]["value"] == 0.5 and "auc" not in scores  # labels only: no probabilities
    assert {(v["metric_name"], v["constraint_check_type"]) for v in violations} == {
        ("accuracy", "LessThanThreshold"),
        ("f1", "LessThanThreshold"),
    }


def test_records_and_labels_that_disagree_on_rows_are_named(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline", "numeric", [1.0, 2.0, 3.0])
    _evaluation(baseline, "regression_metrics", {"rmse": 1.0})
    CaptureWriter(tmp_path / "capture", "ep", clock=lambda: WHEN).write(
        b"1\n2\n", "text/csv", b"5\n6\n", "text/csv", event_id="two-rows"
    )
    truth = _truth(tmp_path / "gt.jsonl", {"two-rows": "5"})
    with pytest.raises(MonitorInputError, match=r"gt\.jsonl: line 1: 1 labels for the 2 rows of .*\.jsonl: line 1"):
        monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=truth)


def test_the_problem_type_comes_from_the_evaluation_or_must_be_given(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline", "numeric", [1.0, 2.0, 3.0])
    CaptureWriter(tmp_path / "capture", "ep", clock=lambda: WHEN).write(
        b"1", "text/csv", b"5", "text/csv", event_id="e"
    )
    truth = _truth(tmp_path / "gt.jsonl", {"e": "5"})
    with pytest.raises(MonitorInputError, match="give --problem-type"):
        monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=truth)
    report = monitor(
        baseline,
        tmp_path / "capture",
        tmp_path / "out",
        ground_truth=truth,
        problem_type=ProblemType.REGRESSION,
    )
    assert report.model_quality is not None and report.model_quality.matched_rows == 1
    statistics, _ = _read(tmp_path / "out")
    assert "r2" not in statistics["regression_metrics"]  # undefined on one row, and JSON has no NaN


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1]", r"gt\.jsonl: line 1: a ground-truth record must be a JSON object"),
        ('{"groundTruthData": {"data": "1"}}', r"gt\.jsonl: line 1: no eventMetadata\.eventId"),
        ('{"groundTruthData": {"data": 1}, "eventMetadata": {"eventId": "e"}}', r"line 1: no groundTruthData\.data"),
        ('{"groundTruthData": {"data": "1", "encoding": "XML"}, "eventMetadata": {"eventId": "e"}}', r"must be CSV"),
    ],
)
def test_bad_ground_truth_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    baseline = _baseline(tmp_path / "baseline", "numeric", [1.0, 2.0, 3.0])
    _evaluation(baseline, "regression_metrics", {"rmse": 1.0})
    CaptureWriter(tmp_path / "capture", "ep", clock=lambda: WHEN).write(b"1", "text/csv", b"5", "text/csv")
    (tmp_path / "gt.jsonl").write_text(line + "\n")
    with pytest.raises(MonitorInputError, match=message):
        monitor(baseline, tmp_path / "capture", tmp_path / "out", ground_truth=tmp_path / "gt.jsonl")


def test_a_plain_csv_cannot_be_joined_with_ground_truth(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline", "numeric", [1.0, 2.0, 3.0])
    _evaluation(baseline, "regression_metrics", {"rmse": 1.0})
    (tmp_path / "batch.csv").write_text("pred,a\n1,2\n")
    truth = _truth(tmp_path / "gt.jsonl", {"e": "5"})
    with pytest.raises(MonitorInputError, match="a plain CSV has no event ids"):
        monitor(baseline, tmp_path / "batch.csv", tmp_path / "out", ground_truth=truth)
