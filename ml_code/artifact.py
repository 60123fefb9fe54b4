"""The model artifact: what the training job writes to SM_MODEL_DIR and what the server loads.

Layout (the contents of model.tar.gz):
    model.joblib    the fitted scikit-learn Pipeline: preprocessing, then the winning estimator
    schema.json     feature names, kinds and categories in training order; target; class labels
    metadata.json   the winner, its parameters and cross-validated scores, the selection, seeds, the
                    data's content hash, library versions; for binary classifiers the
                    ``decision_threshold`` on P(positive class) that predictions use
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ml_code.schema import DataSchema, ProblemType

MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
METADATA_FILE = "metadata.json"


class ArtifactError(ValueError):
    """A model directory or archive is missing a file or is not a model of ours."""


@dataclass
class ModelArtifact:
    """A trained model with the schema it expects."""

    pipeline: Pipeline
    schema: DataSchema
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_classifier(self) -> bool:
        return self.schema.problem_type is not ProblemType.REGRESSION

    def save(self, model_dir: Path) -> None:
        model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.pipeline, model_dir / MODEL_FILE)
        self.schema.write(model_dir / SCHEMA_FILE)
        self.write_metadata(model_dir)

    def write_metadata(self, model_dir: Path) -> None:
        """(Re)write metadata.json alone."""
        (model_dir / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, model_dir: Path) -> ModelArtifact:
        """Load from a directory, or from a ``model.tar.gz`` inside it (how SageMaker hands it to jobs).

        Raises:
            ArtifactError: a required file is missing.
        """
        if not (model_dir / MODEL_FILE).is_file() and (model_dir / "model.tar.gz").is_file():
            extract_to = model_dir / "extracted"
            with tarfile.open(model_dir / "model.tar.gz") as archive:
                archive.extractall(extract_to, filter="data")
            model_dir = extract_to
        for name in (MODEL_FILE, SCHEMA_FILE):
            if not (model_dir / name).is_file():
                raise ArtifactError(f"{model_dir}: {name} is missing; is this a model directory?")
        metadata_path = model_dir / METADATA_FILE
        return cls(
            pipeline=joblib.load(model_dir / MODEL_FILE),
            schema=DataSchema.read(model_dir / SCHEMA_FILE),
            metadata=json.loads(metadata_path.read_text()) if metadata_path.is_file() else {},
        )

    @property
    def decision_threshold(self) -> float | None:
        """Binary classifiers: predict the positive class (the second label) when its probability is >= this."""
        value = self.metadata.get("decision_threshold")
        if value is None or self.schema.problem_type is not ProblemType.BINARY:
            return None
        return float(value)

    def predict_encoded(self, features: pd.DataFrame) -> np.ndarray:
        """Predictions: floats for regression, class indexes for classifiers (at the decision threshold, if any)."""
        threshold = self.decision_threshold
        if threshold is not None:
            proba = self.pipeline.predict_proba(features[self.schema.feature_names])
            return (np.asarray(proba)[:, 1] >= threshold).astype(int)
        return np.asarray(self.pipeline.predict(features[self.schema.feature_names]))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray | None:
        if not self.is_classifier or not hasattr(self.pipeline, "predict_proba"):
            return None
        return np.asarray(self.pipeline.predict_proba(features[self.schema.feature_names]))

    def decode(self, encoded: np.ndarray) -> list[Any]:
        """Class labels for class indexes; floats unchanged for regression."""
        if self.is_classifier:
            labels = self.schema.classes
            return [labels[int(i)] for i in encoded]
        return [float(v) for v in encoded]

    def encode_target(self, target: pd.Series) -> np.ndarray:
        """Target values as the estimator is trained on them (see ``encode_target``)."""
        return encode_target(self.schema, target)


def encode_target(schema: DataSchema, target: pd.Series) -> np.ndarray:
    """Floats for regression; class indexes into ``schema.classes`` for classification.

    Raises:
        ArtifactError: a label the model was not trained on.
    """
    if schema.problem_type is ProblemType.REGRESSION:
        return target.to_numpy(dtype=float)
    index = {label: i for i, label in enumerate(schema.classes)}
    unknown = sorted(set(target.astype(str)) - set(index))
    if unknown:
        raise ArtifactError(f"target labels {unknown} were not seen in training (known: {list(index)})")
    return target.astype(str).map(index).to_numpy(dtype=int)
