"""Evaluate step: test-split metrics in SageMaker's model-quality JSON (the pipeline's quality gate reads it).

SageMaker runs it as a Processing job:
    python -m ml_code.evaluate
    input   /opt/ml/processing/model/model.tar.gz (or the unpacked directory), /opt/ml/processing/test/*.csv
    output  /opt/ml/processing/evaluation/evaluation.json

Binary classifiers are scored at the decision threshold stored with the model. With 200 or more
test rows each metric's standard deviation comes from a seeded bootstrap of the test set. Beside
the model-quality section, ``cross_validation_metrics`` carries the winner's out-of-fold scores
from training (their standard deviation is the spread over folds), and ``model_build`` what it was built
from (data content hashes, seeds, the decision threshold, whether the time budget cut the search).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml_code import metrics
from ml_code.artifact import ArtifactError, ModelArtifact
from ml_code.environment import processing_root
from ml_code.preprocess import combine_inputs
from ml_code.schema import DataValidationError, load_dataset


def evaluate(model_dir: Path, test_file: Path) -> dict[str, Any]:
    """Score the model on the test split.

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
    if build:
        report["model_build"] = build
    return report


_BUILD_KEYS = (
    "decision_threshold",
    "threshold_metric",
    "selection_metric",
    "budget_exhausted",
    "trials_planned",
    "trials_completed",
    "seeds",
    "data",
)


def main(env: Mapping[str, str] | None = None) -> int:
    root = processing_root(env)
    try:
        test_file = combine_inputs(root / "test")
        report = evaluate(root / "model", test_file)
    except (ArtifactError, DataValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = root / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
