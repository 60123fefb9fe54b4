"""Baseline step: statistics.json and constraints.json in Model Monitor's formats, laid out as Model Monitor reads.

SageMaker runs it as a Processing job:
    python -m ml_code.baseline
    input   /opt/ml/processing/train/*.csv (with schema.json beside it)
            /opt/ml/processing/model/ (model.tar.gz or the unpacked artifact)
    output  /opt/ml/processing/baseline/{statistics,constraints}.json

Column layout. Model Monitor joins each captured record as the model's output column(s) first,
then the request's features, and matches those columns to the baseline by position. So the
baseline's first column is the model's prediction on the training data (``predicted_<target>``:
the value for regression, the label for classifiers), then the input features in training order;
the target itself is not profiled. ``python -m ml_code.monitor`` reads the same layout, so one
baseline serves both Model Monitor and the platform's own check.

Without a model in /opt/ml/processing/model the step fails and says why: a features-only baseline
would compare captured data one column off. The pipeline and ``local_run`` give it the trained model.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_code.environment import processing_root
from ml_code.schema import DataSchema, DataValidationError, ProblemType, load_dataset

KLL_PARAMETERS = {"c": 0.64, "k": 2048.0}
BUCKETS = 10  # what Model Monitor materializes
# A categorical column gets a domain constraint only while its cardinality is small.
MAX_DOMAIN_SIZE = 32
# Deequ's (and so Model Monitor's) default: data-type and domain checks require every value to match.
DATATYPE_CHECK_THRESHOLD = 1.0
DOMAIN_CONTENT_THRESHOLD = 1.0
COMPARISON_THRESHOLD = 0.1


def prediction_column(schema: DataSchema) -> str:
    """The name of the baseline's first column: the model's output for this schema's target."""
    return f"predicted_{schema.target}"


def _kll_levels(ordered: np.ndarray) -> list[list[float]]:
    """A KLL-shaped sketch of sorted values: items at level L weigh 2**L, as Model Monitor's sketches do.

    With n <= k all items sit at level 0 and the sketch is the data. Above k, the middle value of
    every block of 2**L sorted values is kept, at the lowest level L that fits in k items. The
    cumulative distribution this sketch describes is then within 2**L/n of the data's at every
    point, ties included: under 2/k (0.1 %), far below any drift threshold.
    """
    k = int(KLL_PARAMETERS["k"])
    level = 0
    while len(ordered) / (2**level) > k:
        level += 1
    kept = ordered[(2**level) // 2 :: 2**level] if level else ordered
    return [[] for _ in range(level)] + [[float(v) for v in kept]]


def numeric_statistics(ordered: np.ndarray, num_missing: int) -> dict[str, Any]:
    """Model Monitor's ``numerical_statistics`` of the present values, given sorted.

    Raises:
        ValueError: no present value (a column with none has no distribution to describe).
    """
    if ordered.size == 0:
        raise ValueError("a numeric column needs at least one present value")
    low, high = float(ordered[0]), float(ordered[-1])
    edges = np.linspace(low, high, BUCKETS + 1) if high > low else np.array([low] * (BUCKETS + 1))
    counts = np.histogram(ordered, bins=BUCKETS, range=(low, high) if high > low else None)[0]
    return {
        "common": {"num_present": int(ordered.size), "num_missing": int(num_missing)},
        "mean": float(ordered.mean()),
        "sum": float(ordered.sum()),
        "std_dev": float(ordered.std()),
        "min": low,
        "max": high,
        "distribution": {
            "kll": {
                "buckets": [
                    {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
                    for i in range(BUCKETS)
                ],
                "sketch": {"parameters": dict(KLL_PARAMETERS), "data": _kll_levels(ordered)},
            }
        },
    }


def string_statistics(counts: Mapping[str, int], num_missing: int) -> dict[str, Any]:
    """Model Monitor's ``string_statistics`` from the count of each present value."""
    return {
        "common": {"num_present": int(sum(counts.values())), "num_missing": int(num_missing)},
        "distinct_count": float(len(counts)),
        "distribution": {"categorical": {"buckets": [{"value": v, "count": float(counts[v])} for v in sorted(counts)]}},
    }


def _numeric_column(column: pd.Series) -> dict[str, Any]:
    present = np.sort(column.dropna().to_numpy(dtype=float))
    return numeric_statistics(present, int(column.isna().sum()))


def _string_column(column: pd.Series) -> dict[str, Any]:
    counts = column.dropna().astype(str).value_counts()
    return string_statistics({str(k): int(v) for k, v in counts.items()}, int(column.isna().sum()))


def _inferred_type(values: pd.Series, kind: str) -> str:
    if kind != "numeric":
        return "String"
    present = values.dropna().to_numpy(dtype=float)
    return "Integral" if np.all(np.mod(present, 1) == 0) else "Fractional"


def _profile(name: str, column: pd.Series, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    inferred = _inferred_type(column, kind)
    completeness = float(column.notna().mean())
    if kind == "numeric":
        statistics = {"name": name, "inferred_type": inferred, "numerical_statistics": _numeric_column(column)}
        constraint: dict[str, Any] = {
            "name": name,
            "inferred_type": inferred,
            "completeness": completeness,
            "num_constraints": {"is_non_negative": bool((column.dropna() >= 0).all())},
        }
        return statistics, constraint
    statistics = {"name": name, "inferred_type": inferred, "string_statistics": _string_column(column)}
    constraint = {"name": name, "inferred_type": inferred, "completeness": completeness}
    domain = sorted(column.dropna().astype(str).unique())
    if len(domain) <= MAX_DOMAIN_SIZE:
        constraint["string_constraints"] = {"domains": domain}
    return statistics, constraint


def monitoring_config() -> dict[str, Any]:
    """Model Monitor's defaults: every check on, L-infinity drift above 0.1 with the robust correction."""
    return {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": DATATYPE_CHECK_THRESHOLD,
        "domain_content_threshold": DOMAIN_CONTENT_THRESHOLD,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": COMPARISON_THRESHOLD,
            "comparison_method": "Robust",
            "categorical_comparison_threshold": COMPARISON_THRESHOLD,
            "categorical_drift_method": "LInfinity",
        },
    }


def build_baseline(
    features: pd.DataFrame, schema: DataSchema, predictions: pd.Series | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statistics and constraints documents for ``features`` (and the model's ``predictions`` of them).

    Args:
        features: the training features, typed per ``schema``.
        schema: features in training order; the target names the prediction column.
        predictions: the model's output for each row of ``features`` (values, or class labels);
            when given it becomes the first column, as Model Monitor lays captured data out.

    Raises:
        DataValidationError: a feature is named like the prediction column.
    """
    columns: list[tuple[str, pd.Series, str]] = []
    if predictions is not None:
        name = prediction_column(schema)
        if name in schema.feature_names:
            raise DataValidationError(f"feature {name!r} has the name of the prediction column; rename it")
        kind = "numeric" if schema.problem_type is ProblemType.REGRESSION else "categorical"
        columns.append((name, pd.Series(np.asarray(predictions), index=features.index), kind))
    columns += [(f.name, features[f.name], f.kind) for f in schema.features]
    stat_features, constraint_features = [], []
    for name, column, kind in columns:
        statistics, constraint = _profile(name, column, kind)
        stat_features.append(statistics)
        constraint_features.append(constraint)
    statistics_doc = {"version": 0.0, "dataset": {"item_count": len(features)}, "features": stat_features}
    constraints_doc = {"version": 0.0, "features": constraint_features, "monitoring_config": monitoring_config()}
    _assert_finite(statistics_doc)
    return statistics_doc, constraints_doc


def _assert_finite(document: Any) -> None:
    # JSON has no NaN: a NaN here would make the file unreadable for Model Monitor.
    if isinstance(document, float) and not math.isfinite(document):
        raise ValueError("baseline statistic is not finite")
    if isinstance(document, dict):
        for value in document.values():
            _assert_finite(value)
    elif isinstance(document, list):
        for value in document:
            _assert_finite(value)


def write_baseline(train_file: Path, schema: DataSchema, out_dir: Path, model_dir: Path | None = None) -> None:
    """Profile ``train_file`` (and, given ``model_dir``, the model's predictions on it) into ``out_dir``.

    Raises:
        DataValidationError: bad training data, or a model trained on other features.
        ArtifactError: ``model_dir`` holds no model of ours.
    """
    dataset = load_dataset(train_file, target=schema.target, problem_type=schema.problem_type, schema=schema)
    predictions = None
    if model_dir is not None:
        from ml_code.artifact import ModelArtifact  # scikit-learn: imported only where a model is loaded

        artifact = ModelArtifact.load(model_dir)
        if artifact.schema.feature_names != schema.feature_names:
            raise DataValidationError(
                f"{model_dir}: the model's features {artifact.schema.feature_names} are not the training "
                f"data's {schema.feature_names}"
            )
        predictions = pd.Series(
            artifact.decode(artifact.predict_encoded(dataset.features)), index=dataset.features.index
        )
    statistics, constraints = build_baseline(dataset.features, schema, predictions)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "statistics.json").write_text(json.dumps(statistics, indent=2) + "\n")
    (out_dir / "constraints.json").write_text(json.dumps(constraints, indent=2) + "\n")


def _has_model(model_dir: Path) -> bool:
    return model_dir.is_dir() and any(model_dir.iterdir())


def main(env: Mapping[str, str] | None = None) -> int:
    # Imported here: they bring scikit-learn, which ml_code.monitor (a user of this module's formats) needs not load.
    from ml_code.artifact import ArtifactError
    from ml_code.preprocess import combine_inputs

    root = processing_root(env)
    train_dir = root / "train"
    model_dir = root / "model"
    try:
        if not (train_dir / "schema.json").is_file():
            raise DataValidationError(f"{train_dir}: schema.json is missing (the preprocess step writes it)")
        train_file = combine_inputs(train_dir)
        if not _has_model(model_dir):
            raise DataValidationError(
                f"{model_dir} has no model: the baseline leads with the model's prediction (captured data is "
                "output first, then the features), so the step needs the trained model as its 'model' input"
            )
        write_baseline(train_file, DataSchema.read(train_dir / "schema.json"), root / "baseline", model_dir)
    except (ArtifactError, DataValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"baseline written to {root / 'baseline'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
