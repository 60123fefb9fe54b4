"""Model quality: captured predictions joined with ground truth, scored, and compared with the registered evaluation.

Ground truth is what Model Monitor ingests, JSONL records under ``yyyy/mm/dd/hh/`` (one file or a tree)::

    {"groundTruthData": {"data": "9", "encoding": "CSV"}, "eventMetadata": {"eventId": "<id>"}, "eventVersion": "0"}

``eventMetadata.eventId`` names the captured record: its ``inferenceId`` when the caller gave one,
else its ``eventId`` (Model Monitor's rule). ``data`` holds one label per row of that record (CSV
lines or a JSON list; ``BASE64`` encodes either). A label given twice keeps the last, in path order.

The metrics are the evaluate step's (``ml_code.metrics``) on the labels the endpoint returned; the
server returns no probabilities, so AUC is not among them. Each monitored metric is compared with
the registered evaluation's value, allowing a relative ``tolerance``: an error metric (rmse, mae)
violates ``GreaterThanThreshold`` above ``registered * (1 + tolerance)``, a score (accuracy, f1,
weighted_f1) ``LessThanThreshold`` below ``registered * (1 - tolerance)``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml_code.monitor.batch import CapturedPrediction, capture_files
from ml_code.monitor.errors import MonitorInputError
from ml_code.schema import ProblemType

MONITORED: dict[ProblemType, tuple[str, ...]] = {
    ProblemType.REGRESSION: ("rmse", "mae"),
    ProblemType.BINARY: ("accuracy", "f1"),
    ProblemType.MULTICLASS: ("accuracy", "weighted_f1"),
}
LOWER_IS_BETTER = frozenset({"mse", "rmse", "mae"})


@dataclass(frozen=True)
class QualityViolation:
    """One entry of the model-quality constraint_violations.json (Model Monitor's shape)."""

    metric_name: str
    constraint_check_type: str  # GreaterThanThreshold or LessThanThreshold
    description: str

    def to_json(self) -> dict[str, str]:
        return {
            "metric_name": self.metric_name,
            "constraint_check_type": self.constraint_check_type,
            "description": self.description,
        }


@dataclass
class ModelQualityResult:
    """What the join matched, the metrics on it, and the violations."""

    problem_type: ProblemType
    matched_rows: int
    unmatched_records: int  # captured records with no ground truth yet
    orphan_labels: int  # ground-truth records with no captured record
    scores: dict[str, float] = field(default_factory=dict)
    violations: list[QualityViolation] = field(default_factory=list)

    def statistics(self) -> dict[str, Any]:
        from ml_code.metrics import REPORT_KEY

        body = {name: {"value": value, "standard_deviation": "NaN"} for name, value in self.scores.items()}
        return {
            "version": 0.0,
            "dataset": {"item_count": self.matched_rows},
            REPORT_KEY[self.problem_type]: body,
        }

    def metrics(self) -> dict[str, float]:
        return dict(self.scores)


@dataclass(frozen=True)
class Evaluation:
    """The registered evaluation (evaluation.json): its problem type, metric values and class labels."""

    problem_type: ProblemType
    values: dict[str, float]
    classes: tuple[str, ...]


def load_evaluation(path: Path) -> Evaluation:
    """Read the evaluate step's evaluation.json.

    Raises:
        MonitorInputError: missing, not JSON, or not a model-quality report.
    """
    from ml_code.metrics import REPORT_KEY

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MonitorInputError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MonitorInputError(f"{path}: not valid JSON: {exc}") from None
    by_key = {key: problem for problem, key in REPORT_KEY.items()}
    found = [k for k in document if k in by_key] if isinstance(document, dict) else []
    if len(found) != 1:
        raise MonitorInputError(f"{path}: expected one of {sorted(by_key)} as the report's key")
    section = document[found[0]]
    values = {
        name: float(entry["value"])
        for name, entry in section.items()
        if isinstance(entry, dict) and isinstance(entry.get("value"), (int, float))
    }
    matrix = section.get("confusion_matrix")
    classes = tuple(str(k) for k in matrix) if isinstance(matrix, dict) else ()
    return Evaluation(problem_type=by_key[found[0]], values=values, classes=classes)


def _labels_of(record: dict[str, Any], where: str) -> list[str]:
    truth = record.get("groundTruthData")
    if not isinstance(truth, dict) or not isinstance(truth.get("data"), str):
        raise MonitorInputError(f"{where}: no groundTruthData.data string")
    data, encoding = truth["data"], str(truth.get("encoding", "CSV")).upper()
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise MonitorInputError(f"{where}: groundTruthData.data is not base64 of UTF-8 text") from None
        encoding = "JSON" if data.lstrip().startswith("[") else "CSV"
    if encoding == "JSON":
        try:
            document = json.loads(data)
        except json.JSONDecodeError as exc:
            raise MonitorInputError(f"{where}: groundTruthData.data is not valid JSON: {exc.msg}") from None
        values = document if isinstance(document, list) else [document]
        return [str(v) for v in values]
    if encoding != "CSV":
        raise MonitorInputError(f"{where}: groundTruthData.encoding must be CSV, JSON or BASE64, got {encoding!r}")
    return [row[0].strip() for row in csv.reader(io.StringIO(data)) if row and row[0].strip()]


def read_ground_truth(path: Path) -> dict[str, tuple[list[str], str]]:
    """Labels by event id, from a ground-truth file or tree.

    Raises:
        MonitorInputError: naming the file and line of a record that cannot be read.
    """
    labels: dict[str, tuple[list[str], str]] = {}
    for file in capture_files(path):
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise MonitorInputError(f"{file}: not UTF-8 text") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{file}: line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MonitorInputError(f"{where}: not a JSON record: {exc.msg}") from None
            if not isinstance(record, dict):
                raise MonitorInputError(f"{where}: a ground-truth record must be a JSON object")
            key = (record.get("eventMetadata") or {}).get("eventId")
            if not isinstance(key, str) or not key:
                raise MonitorInputError(f"{where}: no eventMetadata.eventId")
            labels[key] = (_labels_of(record, where), where)
    return labels


def _floats(values: list[str], what: str, where: str) -> np.ndarray:
    out = np.empty(len(values))
    for i, value in enumerate(values):
        try:
            out[i] = float(value)
        except ValueError:
            raise MonitorInputError(f"{where}: {what} {value!r} is not a number") from None
        if not math.isfinite(out[i]):
            raise MonitorInputError(f"{where}: {what} {value!r} is not a finite number")
    return out


def check_model_quality(
    predictions: list[CapturedPrediction],
    ground_truth: dict[str, tuple[list[str], str]],
    problem_type: ProblemType,
    evaluation: Evaluation | None,
    tolerance: float,
) -> ModelQualityResult:
    """Join, score and compare.

    Raises:
        MonitorInputError: a record and its labels disagree on the number of rows, a regression
            value is not a number, or a binary problem shows more than two labels.
    """
    from ml_code import metrics  # scikit-learn: loaded only when there is ground truth to score

    y_true: list[str] = []
    y_pred: list[str] = []
    origins: list[str] = []
    matched_keys: set[str] = set()
    unmatched = 0
    for prediction in predictions:
        truth = ground_truth.get(prediction.key)
        if truth is None:
            unmatched += 1
            continue
        labels, truth_where = truth
        if len(labels) != len(prediction.values):
            raise MonitorInputError(
                f"{truth_where}: {len(labels)} labels for the {len(prediction.values)} rows of {prediction.where}"
            )
        matched_keys.add(prediction.key)
        y_true += labels
        y_pred += prediction.values
        origins += [prediction.where] * len(labels)
    result = ModelQualityResult(
        problem_type=problem_type,
        matched_rows=len(y_true),
        unmatched_records=unmatched,
        orphan_labels=len(set(ground_truth) - matched_keys),
    )
    if not y_true:
        return result
    if problem_type is ProblemType.REGRESSION:
        truth_values = _floats(y_true, "label", "ground truth")
        predicted = np.empty(len(y_pred))
        for i, (value, where) in enumerate(zip(y_pred, origins, strict=True)):
            predicted[i] = _floats([value], "prediction", where)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # r2 of one row: NaN, dropped below
            result.scores = metrics.compute(problem_type, truth_values, predicted, None)
    else:
        classes = list(evaluation.classes) if evaluation and evaluation.classes else []
        classes += sorted((set(y_true) | set(y_pred)) - set(classes))
        if problem_type is ProblemType.BINARY and len(classes) > 2:
            raise MonitorInputError(f"a binary model, but the labels and predictions hold {len(classes)}: {classes}")
        index = {label: i for i, label in enumerate(classes)}
        truth_codes = np.array([index[v] for v in y_true])
        predicted_codes = np.array([index[v] for v in y_pred])
        result.scores = metrics.compute(problem_type, truth_codes, predicted_codes, None)
    # A metric undefined on this sample (r2 of one row) is left out: JSON has no NaN.
    result.scores = {name: value for name, value in result.scores.items() if math.isfinite(value)}
    if evaluation is not None:
        result.violations = compare_with_evaluation(result.scores, evaluation, problem_type, tolerance, len(y_true))
    return result


def compare_with_evaluation(
    scores: dict[str, float], evaluation: Evaluation, problem_type: ProblemType, tolerance: float, rows: int
) -> list[QualityViolation]:
    """The judged metrics that are worse than the registered evaluation's by more than ``tolerance``.

    An error metric (rmse, mae) violates ``GreaterThanThreshold`` above ``registered * (1 + tolerance)``,
    a score ``LessThanThreshold`` below ``registered * (1 - tolerance)``: the thresholds the deploy writes
    into Model Monitor's model-quality constraints (lambdas/monitoring_baseline), so both engines agree.
    """
    violations = []
    for name in MONITORED[problem_type]:
        if name not in scores or name not in evaluation.values:
            continue
        registered, observed = evaluation.values[name], scores[name]
        if name in LOWER_IS_BETTER:
            threshold, operator = registered * (1 + tolerance), "GreaterThanThreshold"
            violated = observed > threshold
        else:
            threshold, operator = registered * (1 - tolerance), "LessThanThreshold"
            violated = observed < threshold
        if violated:
            violations.append(
                QualityViolation(
                    name,
                    operator,
                    f"Metric {name} with {observed:.6g} was {operator} {threshold:.6g} (registered "
                    f"{registered:.6g}, tolerance {tolerance * 100:g}%; {rows} labelled rows).",
                )
            )
    return violations
