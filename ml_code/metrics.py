"""Metrics per problem type, in SageMaker's model-quality JSON shape, with bootstrap standard deviations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn import metrics as skm

from ml_code.schema import ProblemType

# The metrics `compute` reports per problem type (the names the user's `metric` may take).
METRIC_NAMES: dict[ProblemType, frozenset[str]] = {
    ProblemType.REGRESSION: frozenset({"mse", "rmse", "mae", "r2"}),
    ProblemType.BINARY: frozenset({"accuracy", "balanced_accuracy", "f1", "precision", "recall", "auc"}),
    ProblemType.MULTICLASS: frozenset({"accuracy", "weighted_f1", "macro_f1", "weighted_auc"}),
}
GREATER_IS_BETTER: dict[str, bool] = {"mse": False, "rmse": False, "mae": False, "log_loss": False}

REPORT_KEY = {
    ProblemType.REGRESSION: "regression_metrics",
    ProblemType.BINARY: "binary_classification_metrics",
    ProblemType.MULTICLASS: "multiclass_classification_metrics",
}
# Below this many test rows the bootstrap's spread says little; the report then keeps "NaN".
BOOTSTRAP_MIN_ROWS = 200
BOOTSTRAP_REPLICATES = 200
BOOTSTRAP_SEED = 0


def decide(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class indexes from probabilities: P(positive) >= ``threshold`` for binary, else the most probable class."""
    if threshold is not None and proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(int)
    return np.argmax(proba, axis=1)


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
        out["balanced_accuracy"] = float(skm.balanced_accuracy_score(y_true, y_pred))
        out["f1"] = float(skm.f1_score(y_true, y_pred, zero_division=0))
        out["precision"] = float(skm.precision_score(y_true, y_pred, zero_division=0))
        out["recall"] = float(skm.recall_score(y_true, y_pred, zero_division=0))
        if proba is not None and len(np.unique(y_true)) == 2:
            out["auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
    else:
        out["weighted_f1"] = float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0))
        out["macro_f1"] = float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
        if proba is not None and len(np.unique(y_true)) == proba.shape[1]:
            out["weighted_auc"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted"))
    return out


def bootstrap_std(
    problem_type: ProblemType,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    *,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, float]:
    """Standard deviation of each metric over seeded bootstrap resamples of the test rows.

    A resample where a metric is undefined (AUC with one class drawn) leaves that metric out
    for that resample.
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    draws: dict[str, list[float]] = {}
    for _ in range(replicates):
        rows = rng.integers(0, n, size=n)
        sample = compute(problem_type, y_true[rows], y_pred[rows], None if proba is None else proba[rows])
        for name, value in sample.items():
            draws.setdefault(name, []).append(value)
    return {name: float(np.std(values, ddof=1)) for name, values in draws.items() if len(values) > 1}


def model_quality_report(
    problem_type: ProblemType,
    scores: dict[str, float],
    *,
    y_true: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    proba: np.ndarray | None = None,
    class_labels: list[str] | None = None,
) -> dict[str, Any]:
    """SageMaker's model-metrics JSON (what ModelMetrics.model_statistics points at).

    With the predictions and at least BOOTSTRAP_MIN_ROWS test rows, each metric's
    ``standard_deviation`` is its spread over a seeded bootstrap of the test set; otherwise "NaN".
    """
    spread: dict[str, float] = {}
    if y_true is not None and y_pred is not None and len(y_true) >= BOOTSTRAP_MIN_ROWS:
        spread = bootstrap_std(problem_type, y_true, y_pred, proba)
    body: dict[str, Any] = {
        name: {"value": value, "standard_deviation": spread.get(name, "NaN")} for name, value in scores.items()
    }
    if problem_type is not ProblemType.REGRESSION and y_true is not None and y_pred is not None:
        labels = list(range(len(class_labels or [])))
        matrix = skm.confusion_matrix(y_true, y_pred, labels=labels)
        names = class_labels or [str(i) for i in labels]
        body["confusion_matrix"] = {
            names[i]: {names[j]: int(matrix[i, j]) for j in range(len(names))} for i in range(len(names))
        }
    return {REPORT_KEY[problem_type]: body}
