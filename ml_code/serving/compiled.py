"""The fitted pipeline turned into plain numpy, for fast row-at-a-time inference.

scikit-learn's generic path costs milliseconds per row (ColumnTransformer bookkeeping,
a joblib dispatch per tree). The arithmetic itself is microseconds: impute, scale and
one-hot are element-wise, a linear model is a dot product, and a forest is a walk down
padded node arrays, all trees at once. Tests check that the compiled model gives the
pipeline's own predictions on real data.

Voting ensembles compile member by member. Estimators it does not know (XGBoost
included, whose own in-place prediction is already fast) are called through their own
``predict_proba``/``predict`` on the compiled transform's output, so every model serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from ml_code.schema import DataSchema

Row = Sequence[float | str | None]  # numeric cells as float (NaN when missing), categorical as str or None


class CompiledTransform:
    """The fitted ColumnTransformer (numeric: median impute + scale; categorical: mode impute + one-hot)."""

    def __init__(self, preprocessor: ColumnTransformer, schema: DataSchema) -> None:
        position = {name: i for i, name in enumerate(schema.feature_names)}
        self.width = 0
        self.numeric_index: list[int] = []
        self.numeric_fill = np.empty(0)
        self.numeric_mean = np.empty(0)
        self.numeric_scale = np.empty(0)
        self.categorical: list[tuple[int, str, int, dict[str, int]]] = []  # (position, fill, offset, category->col)
        for name, transformer, columns in preprocessor.transformers_:
            if name == "numeric":
                impute, scale = transformer.named_steps["impute"], transformer.named_steps["scale"]
                self.numeric_index = [position[c] for c in columns]
                self.numeric_fill = np.asarray(impute.statistics_, dtype=float)
                self.numeric_mean = np.asarray(scale.mean_, dtype=float)
                self.numeric_scale = np.asarray(scale.scale_, dtype=float)
                self.numeric_offset = self.width
                self.width += len(columns)
            elif name == "categorical":
                impute, onehot = transformer.named_steps["impute"], transformer.named_steps["onehot"]
                for column, fill, categories in zip(columns, impute.statistics_, onehot.categories_, strict=True):
                    lookup = {str(c): i for i, c in enumerate(categories)}
                    self.categorical.append((position[column], str(fill), self.width, lookup))
                    self.width += len(categories)
            elif name != "remainder":
                raise TypeError(f"unexpected transformer {name!r}")

    def transform(self, rows: Sequence[Row]) -> np.ndarray:
        out = np.zeros((len(rows), self.width))
        if self.numeric_index:
            values = np.array([[row[i] for i in self.numeric_index] for row in rows], dtype=float)
            values = np.where(np.isnan(values), self.numeric_fill, values)
            stop = self.numeric_offset + len(self.numeric_index)
            out[:, self.numeric_offset : stop] = (values - self.numeric_mean) / self.numeric_scale
        for position, fill, offset, lookup in self.categorical:
            for r, row in enumerate(rows):
                value = row[position]
                column = lookup.get(fill if value is None else str(value))
                if column is not None:  # unknown categories encode as all zeros, like handle_unknown="ignore"
                    out[r, offset + column] = 1.0
        return out


class _Forest:
    """All trees of a fitted forest as padded arrays, walked level by level for every tree at once."""

    def __init__(self, forest: Any, classifier: bool) -> None:
        trees = [e.tree_ for e in forest.estimators_]
        width = max(t.node_count for t in trees)
        n = len(trees)
        self.left = np.full((n, width), -1, dtype=np.intp)
        self.right = np.full((n, width), -1, dtype=np.intp)
        self.feature = np.zeros((n, width), dtype=np.intp)
        self.threshold = np.zeros((n, width))
        outputs = trees[0].value.shape[2]
        self.value = np.zeros((n, width, outputs))
        for i, tree in enumerate(trees):
            count = tree.node_count
            self.left[i, :count] = tree.children_left
            self.right[i, :count] = tree.children_right
            self.feature[i, :count] = np.maximum(tree.feature, 0)
            self.threshold[i, :count] = tree.threshold
            value = tree.value[:, 0, :]
            if classifier:  # per-leaf class fractions, as predict_proba averages them
                value = value / value.sum(axis=1, keepdims=True)
            self.value[i, :count] = value
        self.depth = max(t.max_depth for t in trees)
        self.trees = np.arange(n)

    def mean_leaf_values(self, x: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 features against float64 thresholds.
        x = x.astype(np.float32).astype(np.float64)
        out = np.empty((x.shape[0], self.value.shape[2]))
        for r in range(x.shape[0]):
            node = np.zeros(len(self.trees), dtype=np.intp)
            row = x[r]
            for _ in range(self.depth):
                left = self.left[self.trees, node]
                leaf = left < 0
                if leaf.all():
                    break
                go_left = row[self.feature[self.trees, node]] <= self.threshold[self.trees, node]
                node = np.where(leaf, node, np.where(go_left, left, self.right[self.trees, node]))
            out[r] = self.value[self.trees, node].mean(axis=0)
        return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _compile_estimator(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function of the transformed matrix: values (n,) for a regressor, probabilities (n, k) for a classifier."""
    if hasattr(estimator, "n_jobs"):
        estimator.set_params(n_jobs=1)  # a request is one row or a few: threads only cost here
    if isinstance(estimator, Ridge):
        coef = np.asarray(estimator.coef_, dtype=float).ravel()
        intercept = float(np.ravel(estimator.intercept_)[0])
        return lambda x: x @ coef + intercept
    if isinstance(estimator, LogisticRegression):
        weights = np.asarray(estimator.coef_, dtype=float)
        bias = np.asarray(estimator.intercept_, dtype=float)
        if weights.shape[0] == 1:  # binary: sigmoid of one score, as predict_proba
            return lambda x: np.column_stack([1 - (p := _sigmoid(x @ weights[0] + bias[0])), p])
        return lambda x: _softmax(x @ weights.T + bias)
    if isinstance(estimator, (ExtraTreesRegressor, RandomForestRegressor)):
        forest = _Forest(estimator, classifier=False)
        return lambda x: forest.mean_leaf_values(x)[:, 0]
    if isinstance(estimator, (ExtraTreesClassifier, RandomForestClassifier)):
        forest = _Forest(estimator, classifier=True)
        return forest.mean_leaf_values
    if isinstance(estimator, VotingRegressor):
        members = [_compile_estimator(e) for e in estimator.estimators_]
        return lambda x: np.mean([m(x) for m in members], axis=0)
    if isinstance(estimator, VotingClassifier) and estimator.voting == "soft":
        members = [_compile_estimator(e) for e in estimator.estimators_]
        return lambda x: np.mean([m(x) for m in members], axis=0)
    if hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_"):
        return lambda x: np.asarray(estimator.predict_proba(x))
    return lambda x: np.asarray(estimator.predict(x))


class CompiledModel:
    """Predictions of a fitted pipeline from parsed rows, without scikit-learn's per-call overhead.

    ``predict`` returns floats for regression and class indexes for classification.
    """

    def __init__(self, pipeline: Pipeline, schema: DataSchema) -> None:
        self.transform = CompiledTransform(pipeline.named_steps["preprocess"], schema)
        estimator = pipeline.named_steps["model"]
        self.kind = type(estimator).__name__
        self.classes = np.asarray(estimator.classes_) if hasattr(estimator, "classes_") else None
        self._predict = _compile_estimator(estimator)

    def predict(self, rows: Sequence[Row]) -> np.ndarray:
        out = self._predict(self.transform.transform(rows))
        if self.classes is None:
            return out
        return self.classes[np.argmax(out, axis=1)]
