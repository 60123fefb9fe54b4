"""Baseline step: statistics.json and constraints.json of the training features, in Model Monitor's formats.

Model Monitor schedules use them as the data-quality baseline, and the platform's own
drift check reads the same files. SageMaker runs it as a Processing job:
    python -m ml_code.baseline
    input   /opt/ml/processing/train/*.csv (with schema.json beside it)
    output  /opt/ml/processing/baseline/{statistics,constraints}.json

Only the model's input features are profiled (not the target), in training order.
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
from ml_code.preprocess import combine_inputs
from ml_code.schema import DataSchema, DataValidationError, load_dataset

KLL_PARAMETERS = {"c": 0.64, "k": 2048.0}
BUCKETS = 10  # what Model Monitor materializes
# A categorical column gets a domain constraint only while its cardinality is small.
MAX_DOMAIN_SIZE = 32


def _kll_levels(values: np.ndarray) -> list[list[float]]:
    """A KLL-shaped sketch: items at level L weigh 2**L, as Model Monitor's sketches do.

    With n <= k all items sit at level 0 (exact). Above k, every 2**L-th sorted value is
    kept at the lowest level L that fits in k items, so the weights still sum to ~n.
    """
    k = int(KLL_PARAMETERS["k"])
    ordered = np.sort(values)
    level = 0
    while len(ordered) / (2**level) > k:
        level += 1
    kept = ordered[(2**level) // 2 :: 2**level] if level else ordered
    return [[] for _ in range(level)] + [[float(v) for v in kept]]


def _numeric_statistics(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().to_numpy(dtype=float)
    low, high = float(present.min()), float(present.max())
    edges = np.linspace(low, high, BUCKETS + 1) if high > low else np.array([low] * (BUCKETS + 1))
    counts = np.histogram(present, bins=BUCKETS, range=(low, high) if high > low else None)[0]
    return {
        "common": {"num_present": int(present.size), "num_missing": int(values.isna().sum())},
        "mean": float(present.mean()),
        "sum": float(present.sum()),
        "std_dev": float(present.std()),
        "min": low,
        "max": high,
        "distribution": {
            "kll": {
                "buckets": [
                    {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
                    for i in range(BUCKETS)
                ],
                "sketch": {"parameters": dict(KLL_PARAMETERS), "data": _kll_levels(present)},
            }
        },
    }


def _string_statistics(values: pd.Series) -> dict[str, Any]:
    present = values.dropna().astype(str)
    counts = present.value_counts()
    return {
        "common": {"num_present": int(present.size), "num_missing": int(values.isna().sum())},
        "distinct_count": float(counts.size),
        "distribution": {
            "categorical": {"buckets": [{"value": v, "count": float(counts[v])} for v in sorted(counts.index)]}
        },
    }


def _inferred_type(values: pd.Series, kind: str) -> str:
    if kind != "numeric":
        return "String"
    present = values.dropna().to_numpy(dtype=float)
    return "Integral" if np.all(np.mod(present, 1) == 0) else "Fractional"


def build_baseline(features: pd.DataFrame, schema: DataSchema) -> tuple[dict[str, Any], dict[str, Any]]:
    """The statistics and constraints documents for ``features``."""
    stat_features = []
    constraint_features = []
    for feature in schema.features:
        column = features[feature.name]
        inferred = _inferred_type(column, feature.kind)
        completeness = float(column.notna().mean())
        if feature.kind == "numeric":
            stat_features.append(
                {"name": feature.name, "inferred_type": inferred, "numerical_statistics": _numeric_statistics(column)}
            )
            constraint: dict[str, Any] = {
                "name": feature.name,
                "inferred_type": inferred,
                "completeness": completeness,
                "num_constraints": {"is_non_negative": bool((column.dropna() >= 0).all())},
            }
        else:
            stat_features.append(
                {"name": feature.name, "inferred_type": inferred, "string_statistics": _string_statistics(column)}
            )
            constraint = {"name": feature.name, "inferred_type": inferred, "completeness": completeness}
            domain = sorted(column.dropna().astype(str).unique())
            if len(domain) <= MAX_DOMAIN_SIZE:
                constraint["string_constraints"] = {"domains": domain}
        constraint_features.append(constraint)
    statistics = {"version": 0.0, "dataset": {"item_count": len(features)}, "features": stat_features}
    constraints = {
        "version": 0.0,
        "features": constraint_features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 1.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
        },
    }
    _assert_finite(statistics)
    return statistics, constraints


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


def write_baseline(train_file: Path, schema: DataSchema, out_dir: Path) -> None:
    """Profile ``train_file``'s features and write both documents into ``out_dir``."""
    dataset = load_dataset(train_file, target=schema.target, problem_type=schema.problem_type, schema=schema)
    statistics, constraints = build_baseline(dataset.features, schema)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "statistics.json").write_text(json.dumps(statistics, indent=2) + "\n")
    (out_dir / "constraints.json").write_text(json.dumps(constraints, indent=2) + "\n")


def main(env: Mapping[str, str] | None = None) -> int:
    root = processing_root(env)
    train_dir = root / "train"
    try:
        if not (train_dir / "schema.json").is_file():
            raise DataValidationError(f"{train_dir}: schema.json is missing (the preprocess step writes it)")
        train_file = combine_inputs(train_dir)
        write_baseline(train_file, DataSchema.read(train_dir / "schema.json"), root / "baseline")
    except DataValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"baseline written to {root / 'baseline'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
