"""Metrics per problem type, in SageMaker's model-quality JSON shape, and the metric that selects a model."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from ml_code.schema import ProblemType

# The metric that picks the winning candidate on the validation split, and its direction.
SELECTION_METRIC: dict[ProblemType, tuple[str, bool]] = {
    ProblemType.REGRESSION: ("rmse", False),
    ProblemType.BINARY: ("auc", True),
    ProblemType.MULTICLASS: ("weighted_f1", True),
}

REPORT_KEY = {
    ProblemType.REGRESSION: "regression_metrics",
    ProblemType.BINARY: "binary_classification_metrics",
    ProblemType.MULTICLASS: "multiclass_classification_metrics",
}


def compute(problem_type: ProblemType, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None) -> dict:
    """Scalar metrics for one prediction set.

    Args:
        y_true, y_pred: targets and predictions (class indexes for classification).
        proba: class probabilities (n_rows x n_classes), or None when the model has none.
    """
    if problem_type is ProblemType.REGRESSION:
        mse = float(skm.mean_squared_error(y_true, y_pred))
        return {
            "mse": mse,
            "rmse": math.sqrt(mse),
            "mae": float(skm.mean_absolute_error(y_true, y_pred)),
            "r2": float(skm.r2_score(y_true, y_pred)),
        }
    out: dict[str, float] = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    if problem_type is ProblemType.BINARY:
        out["f1"] = float(skm.f1_score(y_true, y_pred, zero_division=0))
        out["precision"] = float(skm.precision_score(y_true, y_pred, zero_division=0))
        out["recall"] = float(skm.recall_score(y_true, y_pred, zero_division=0))
        if proba is not None:
            out["auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
    else:
        out["weighted_f1"] = float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0))
        out["macro_f1"] = float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
        if proba is not None and len(np.unique(y_true)) == proba.shape[1]:
            out["weighted_auc"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted"))
    return out


def selection_score(problem_type: ProblemType, scores: dict[str, float]) -> float:
    """A number where larger is better, for ranking candidates."""
    name, greater_is_better = SELECTION_METRIC[problem_type]
    if name not in scores:  # a classifier without probabilities cannot report AUC
        name, greater_is_better = "accuracy", True
    value = scores[name]
    return value if greater_is_better else -value


def model_quality_report(
    problem_type: ProblemType,
    scores: dict[str, float],
    *,
    y_true: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    class_labels: list[str] | None = None,
) -> dict[str, Any]:
    """SageMaker's model-metrics JSON (what ModelMetrics.model_statistics points at)."""
    body: dict[str, Any] = {name: {"value": value, "standard_deviation": "NaN"} for name, value in scores.items()}
    if problem_type is not ProblemType.REGRESSION and y_true is not None and y_pred is not None:
        labels = list(range(len(class_labels or [])))
        matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
        names = class_labels or [str(i) for i in labels]
        body["confusion_matrix"] = {
            names[i]: {names[j]: int(matrix[i, j]) for j in range(len(names))} for i in range(len(names))
        }
    return {REPORT_KEY[problem_type]: body}
