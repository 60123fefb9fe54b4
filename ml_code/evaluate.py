"""Evaluate step: test-split metrics in SageMaker's model-quality JSON (the pipeline's quality gate reads it).

SageMaker runs it as a Processing job:
    python -m ml_code.evaluate
    input   /opt/ml/processing/model/model.tar.gz (or the unpacked directory), /opt/ml/processing/test/*.csv
    output  /opt/ml/processing/evaluation/evaluation.json and predictions.csv (the test rows' predictions)

Binary classifiers are scored at the decision threshold stored with the model. With 200 or more
test rows each metric's standard deviation comes from a seeded bootstrap of the test set. Beside
the model-quality section, ``cross_validation_metrics`` carries the winner's out-of-fold scores
from training (their standard deviation is the spread over folds), ``model_build`` what it was built
from (the winner, data content hashes, seeds, the decision threshold, whether the time budget cut the
search), and ``lineage`` the same facts as the short strings the model registry's metadata
properties accept (the pipeline reads them with JsonGet). predictions.csv is what
``ml_code.lineage.compare_builds`` compares between two builds.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml_code import metrics
from ml_code.artifact import ArtifactError, ModelArtifact
from ml_code.environment import processing_root
from ml_code.lineage import EVALUATION_FILE, PREDICTIONS_FILE, predictions_csv
from ml_code.preprocess import combine_inputs
from ml_code.schema import DataValidationError, load_dataset


def evaluate(model_dir: Path, test_file: Path) -> dict[str, Any]:
    """Score the model on the test split (the report alone; ``evaluate_with_predictions`` adds them)."""
    return evaluate_with_predictions(model_dir, test_file)[0]


def evaluate_with_predictions(model_dir: Path, test_file: Path) -> tuple[dict[str, Any], str]:
    """Score the model on the test split; return the report and predictions.csv's text.

    Raises:
        ArtifactError, DataValidationError: a bad model directory or test file, named.
    """
    artifact = ModelArtifact.load(model_dir)
    schema = artifact.schema
    dataset = load_dataset(test_file, target=schema.target, problem_type=schema.problem_type, schema=schema)
    y_true = artifact.encode_target(dataset.target)
    y_pred = artifact.predict_encoded(dataset.features)
    proba = artifact.predict_proba(dataset.features)
    scores = metrics.compute(schema.problem_type, y_true, y_pred, proba)
    report = metrics.model_quality_report(
        schema.problem_type, scores, y_true=y_true, y_pred=y_pred, proba=proba, class_labels=list(schema.classes)
    )
    winner = artifact.metadata.get("winner", {})
    if "cv_scores" in winner:
        losses = winner.get("cv_fold_losses") or []
        proper = artifact.metadata.get("selection_metric")
        report["cross_validation_metrics"] = {
            name: {
                "value": value,
                "standard_deviation": float(np.std(losses, ddof=1)) if name == proper and len(losses) > 1 else "NaN",
            }
            for name, value in winner["cv_scores"].items()
        }
    # What the model was built from and how, for the registry's metadata properties (JsonGet on this file).
    build = {key: artifact.metadata[key] for key in _BUILD_KEYS if key in artifact.metadata}
    if "winner" in artifact.metadata:
        build["winner"] = {k: artifact.metadata["winner"][k] for k in ("family", "params")}
    if build:
        report["model_build"] = build
    header = ["prediction"] + ([f"probability_{label}" for label in schema.classes] if proba is not None else [])
    decoded = artifact.decode(y_pred)
    rows = ([decoded[i], *(proba[i].tolist() if proba is not None else [])] for i in range(len(decoded)))
    predictions = predictions_csv(header, rows)
    report["lineage"] = registry_strings(artifact.metadata, predictions)
    return report, predictions


_BUILD_KEYS = (
    "decision_threshold",
    "threshold_metric",
    "selection_metric",
    "budget_exhausted",
    "budget_cut",
    "refit_rows",
    "trials_planned",
    "trials_completed",
    "seeds",
    "data",
)


def registry_strings(metadata: dict[str, Any], predictions: str) -> dict[str, str]:
    """Build facts as strings the model registry accepts (letters, digits, spaces and ``_.:/=+-@``)."""
    data = metadata.get("data", {})
    planned = metadata.get("trials_planned")
    refit = metadata.get("refit_rows")
    return {
        "budget_exhausted": "true" if metadata.get("budget_exhausted") else "false",
        "trials_completed": f"{metadata.get('trials_completed', 0)} of {planned}" if planned else "unknown",
        "refit_rows": f"{refit} of {data.get('rows', 0)}" if refit is not None else "unknown",
        "input_sha256": str(data.get("input_sha256") or "unknown"),
        "predictions_sha256": hashlib.sha256(predictions.encode()).hexdigest(),
    }


def main(env: Mapping[str, str] | None = None) -> int:
    root = processing_root(env)
    try:
        test_file = combine_inputs(root / "test")
        report, predictions = evaluate_with_predictions(root / "model", test_file)
    except (ArtifactError, DataValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = root / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    (out / EVALUATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
    (out / PREDICTIONS_FILE).write_text(predictions)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
