"""The fitted pipeline turned into array code, for fast inference on one row or a hundred thousand.

scikit-learn's generic path costs milliseconds per call (ColumnTransformer bookkeeping, a
joblib dispatch per tree), and XGBoost's wrapper about half a millisecond. The arithmetic
itself is microseconds: impute, scale and one-hot are column-wise numpy, a linear model is a
dot product, and every tree ensemble (scikit-learn's forests and XGBoost's boosted trees alike)
becomes flat node arrays walked by one loop compiled with numba, which releases the GIL so
the server can run it beside its event loop. Tests check that the compiled model gives the
pipeline's own predictions for every family and problem type.

Voting ensembles compile member by member. Estimators it does not know are called through
their own ``predict_proba``/``predict`` on the compiled transform's output, so every model serves.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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

# numba caches compiled code beside the module unless told otherwise; the image's code directory
# may be read-only, so the cache goes to a temporary directory that every worker shares.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "ml_code-numba-cache"))
import numba  # reads NUMBA_CACHE_DIR when imported

# Rows predicted per call of the compiled code: a long request checks between chunks whether
# its client is still there (see ``CompiledModel.predict_proba``).
CHUNK_ROWS = 8192


@dataclass
class Table:
    """Parsed request rows, column by column in the schema's feature order.

    Numeric columns are float64 arrays (NaN where missing); categorical columns are lists of
    stripped strings (None where missing).
    """

    columns: list[Any]
    rows: int
    numeric: np.ndarray | None = None  # the numeric columns side by side (n, k), schema order, when parsed so

    def numeric_matrix(self, positions: list[int]) -> np.ndarray:
        if self.numeric is not None and self.numeric.shape[1] == len(positions):
            return self.numeric
        return np.column_stack([self.columns[i] for i in positions]).astype(np.float64, copy=False)

    @classmethod
    def from_rows(cls, schema: DataSchema, rows: Sequence[Sequence[float | str | None]]) -> Table:
        """A table from already typed rows (numeric cells as float, categorical as str or None)."""
        columns: list[Any] = []
        for position, feature in enumerate(schema.features):
            cells = [row[position] for row in rows]
            columns.append(np.asarray(cells, dtype=np.float64) if feature.kind == "numeric" else cells)
        return cls(columns=columns, rows=len(rows))

    def to_rows(self) -> list[list[float | str | None]]:
        """Row by row (for tests and messages; serving never needs it)."""
        columns = [c.tolist() if isinstance(c, np.ndarray) else list(c) for c in self.columns]
        return [list(row) for row in zip(*columns, strict=True)] if columns else []

    def slice(self, start: int, stop: int) -> Table:
        numeric = None if self.numeric is None else self.numeric[start:stop]
        return Table([c[start:stop] for c in self.columns], max(0, min(stop, self.rows) - start), numeric)


class ValueOutOfRange(ValueError):
    """A finite input value whose scaled form is not finite: the model cannot compute with it."""

    def __init__(self, row: int, column: str, value: float) -> None:
        super().__init__(f"row {row}, column {column!r}: {value!r} is too large for the model to compute with")
        self.row = row
        self.column = column
        self.value = value


class CompiledTransform:
    """The fitted ColumnTransformer (numeric: median impute + scale; categorical: mode impute + one-hot)."""

    def __init__(self, preprocessor: ColumnTransformer, schema: DataSchema) -> None:
        position = {name: i for i, name in enumerate(schema.feature_names)}
        self.width = 0
        self.numeric_index: list[int] = []
        self.numeric_names: list[str] = []
        self.numeric_offset = 0
        self.numeric_fill = np.empty(0)
        self.numeric_mean = np.empty(0)
        self.numeric_scale = np.empty(0)
        self.categorical: list[tuple[int, str, int, dict[str, int]]] = []  # (position, fill, offset, category->col)
        for name, transformer, columns in preprocessor.transformers_:
            if name == "numeric":
                impute, scale = transformer.named_steps["impute"], transformer.named_steps["scale"]
                self.numeric_index = [position[c] for c in columns]
                self.numeric_names = list(columns)
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

    def transform(self, table: Table) -> np.ndarray:
        """The model's input matrix.

        Raises:
            ValueOutOfRange: a value so large that scaling it overflows.
        """
        n = table.rows
        out = np.zeros((n, self.width))
        if self.numeric_index:
            values = table.numeric_matrix(self.numeric_index)
            values = np.where(np.isnan(values), self.numeric_fill, values)
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = (values - self.numeric_mean) / self.numeric_scale
            if not np.isfinite(scaled).all():
                row, column = (int(i) for i in np.argwhere(~np.isfinite(scaled))[0])
                raise ValueOutOfRange(row + 1, self.numeric_names[column], float(values[row, column]))
            stop = self.numeric_offset + len(self.numeric_index)
            out[:, self.numeric_offset : stop] = scaled
        rows = np.arange(n)
        for position, fill, offset, lookup in self.categorical:
            codes = np.fromiter(
                (lookup.get(fill if value is None else value, -1) for value in table.columns[position]),
                dtype=np.intp,
                count=n,
            )
            known = codes >= 0  # unknown categories encode as all zeros, like handle_unknown="ignore"
            out[rows[known], offset + codes[known]] = 1.0
        return out


@numba.njit(nogil=True, boundscheck=False, cache=True)
def _walk(
    x: np.ndarray,
    roots: np.ndarray,
    column: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    value: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; the tests check its results against the libraries'
    # Tree by tree, so that one tree's nodes stay in cache while every row walks it. The rule is
    # "go left when x <= threshold"; leaves have left == -1.
    width = value.shape[1]
    for t in range(roots.shape[0]):
        root = roots[t]
        first = column[t]
        for r in range(x.shape[0]):
            node = root
            child = left[node]
            while child >= 0:
                node = child if x[r, feature[node]] <= threshold[node] else right[node]
                child = left[node]
            for k in range(width):
                out[r, first + k] += value[node, k]


class TreeArrays:
    """Many trees as flat node arrays (global node ids), summed into ``outputs`` columns per row.

    Inputs are rounded to float32 first, as both scikit-learn and XGBoost compare float32 features.
    """

    def __init__(self, trees: list[dict[str, Any]], outputs: int) -> None:
        sizes = [len(t["left"]) for t in trees]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.roots = starts
        self.column = np.asarray([t["column"] for t in trees], dtype=np.int64)
        pairs = list(zip(trees, starts.tolist(), strict=True))
        self.left = np.concatenate([np.where(t["left"] >= 0, t["left"] + s, -1) for t, s in pairs]).astype(np.int32)
        self.right = np.concatenate([np.where(t["right"] >= 0, t["right"] + s, -1) for t, s in pairs]).astype(np.int32)
        self.feature = np.concatenate([np.maximum(t["feature"], 0) for t in trees]).astype(np.int32)
        self.threshold = np.concatenate([t["threshold"] for t in trees]).astype(np.float64)
        self.value = np.ascontiguousarray(np.concatenate([t["value"] for t in trees]), dtype=np.float64)
        self.outputs = outputs
        if len(self.left) >= 2**31:
            raise ValueError("too many tree nodes for 32-bit node ids")

    def sums(self, x: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(x.astype(np.float32).astype(np.float64))
        out = np.zeros((x.shape[0], self.outputs))
        arrays = (self.roots, self.column, self.left, self.right, self.feature, self.threshold, self.value)
        if x.shape[0] < PARALLEL_ROWS:
            _walk(x32, *arrays, out)
            return out
        # A large chunk: halves on two threads (the compiled walk releases the GIL).
        half = x.shape[0] // 2
        parts = [(x32[:half], out[:half]), (x32[half:], out[half:])]
        list(_pool().map(lambda part: _walk(part[0], *arrays, part[1]), parts))
        return out


# Rows from which a chunk is split over two threads; below it, thread hand-off costs more than it saves.
PARALLEL_ROWS = 2048
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="trees")
    return _POOL


def _sklearn_forest(forest: Any, classifier: bool) -> Callable[[np.ndarray], np.ndarray]:
    trees: list[dict[str, Any]] = []
    for estimator in forest.estimators_:
        tree = estimator.tree_
        value = np.asarray(tree.value[:, 0, :], dtype=np.float64)
        if classifier:  # per-leaf class fractions, as predict_proba averages them
            value = value / value.sum(axis=1, keepdims=True)
        trees.append(
            {
                "left": np.asarray(tree.children_left),
                "right": np.asarray(tree.children_right),
                "feature": np.asarray(tree.feature),
                "threshold": np.asarray(tree.threshold),
                "value": value,
                "column": 0,
            }
        )
    arrays = TreeArrays(trees, outputs=trees[0]["value"].shape[1])
    count = len(trees)
    if classifier:
        return lambda x: arrays.sums(x) / count
    return lambda x: arrays.sums(x)[:, 0] / count


def _xgboost(estimator: Any, classifier: bool) -> Callable[[np.ndarray], np.ndarray] | None:
    """XGBoost's gbtree from its own JSON dump; None for what it does not cover (dart, other objectives)."""
    booster = estimator.get_booster()
    document = json.loads(booster.save_raw("json"))
    learner = document["learner"]
    objective = learner["objective"]["name"]
    if learner["gradient_booster"]["name"] != "gbtree":
        return None
    if objective not in ("reg:squarederror", "binary:logistic", "multi:softprob", "multi:softmax"):
        return None
    model = learner["gradient_booster"]["model"]
    groups = int(model["gbtree_model_param"].get("num_parallel_tree", "1") or 1)
    if groups != 1 and objective.startswith("multi"):
        return None
    outputs = max(model["tree_info"]) + 1 if model["tree_info"] else 1
    trees: list[dict[str, Any]] = []
    for tree, group in zip(model["trees"], model["tree_info"], strict=True):
        left = np.asarray(tree["left_children"], dtype=np.int64)
        condition = np.asarray(tree["split_conditions"], dtype=np.float32)
        # XGBoost goes left when x < condition (float32); for float32 x that is x <= the float32 just below.
        below = np.nextafter(condition, np.float32(-np.inf))
        trees.append(
            {
                "left": left,
                "right": np.asarray(tree["right_children"], dtype=np.int64),
                "feature": np.asarray(tree["split_indices"], dtype=np.int64),
                "threshold": below.astype(np.float64),
                "value": np.where(left < 0, condition, 0.0).astype(np.float64)[:, None],
                "column": int(group),
            }
        )
    arrays = TreeArrays(trees, outputs=outputs)
    # The intercept (base score, stored differently across XGBoost versions) from XGBoost itself:
    # its margin on a probe row minus the sum of our leaves there.
    import xgboost

    probe = np.zeros((1, booster.num_features()), dtype=np.float32)
    probe_margin = np.asarray(booster.predict(xgboost.DMatrix(probe), output_margin=True), dtype=np.float64)
    intercept = probe_margin.reshape(1, -1)[0] - arrays.sums(probe.astype(np.float64))[0]

    booster.set_param({"nthread": 2})

    def margin(x: np.ndarray) -> np.ndarray:
        if x.shape[0] < PARALLEL_ROWS:
            return arrays.sums(x) + intercept
        # Many rows: XGBoost's own blocked predictor is faster than one walk per row and tree.
        raw = booster.inplace_predict(x.astype(np.float32), predict_type="margin", validate_features=False)
        return np.asarray(raw, dtype=np.float64).reshape(x.shape[0], -1)

    if not classifier:
        return lambda x: margin(x)[:, 0]
    if outputs == 1:
        return lambda x: np.column_stack([1 - (p := _sigmoid(margin(x)[:, 0])), p])
    return lambda x: _softmax(margin(x))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _compile_estimator(estimator: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function of the transformed matrix: values (n,) for a regressor, probabilities (n, k) for a classifier."""
    if hasattr(estimator, "n_jobs"):
        estimator.set_params(n_jobs=1)  # the fallback path: threads only cost on small requests
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
        return _sklearn_forest(estimator, classifier=False)
    if isinstance(estimator, (ExtraTreesClassifier, RandomForestClassifier)):
        return _sklearn_forest(estimator, classifier=True)
    if type(estimator).__name__ in ("XGBRegressor", "XGBClassifier"):
        compiled = _xgboost(estimator, classifier=type(estimator).__name__ == "XGBClassifier")
        if compiled is not None:
            return compiled
    if isinstance(estimator, (VotingRegressor, VotingClassifier)) and getattr(estimator, "voting", "soft") == "soft":
        members = [_compile_estimator(e) for e in estimator.estimators_]
        weights = estimator.weights
        return lambda x: np.average([m(x) for m in members], axis=0, weights=weights)
    if hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_"):
        return lambda x: np.asarray(estimator.predict_proba(x))
    return lambda x: np.asarray(estimator.predict(x), dtype=np.float64)


class Cancelled(Exception):
    """The caller asked to stop (its client went away) between two chunks of rows."""


class CompiledModel:
    """Predictions of a fitted pipeline from a parsed :class:`Table`, without scikit-learn's per-call overhead.

    ``predict_proba`` gives probabilities (n, k) for classifiers and values (n,) for regressors;
    ``predict`` gives floats for regression and class indexes (argmax, as scikit-learn) for classification.
    """

    def __init__(self, pipeline: Pipeline, schema: DataSchema) -> None:
        self.transform = CompiledTransform(pipeline.named_steps["preprocess"], schema)
        estimator = pipeline.named_steps["model"]
        self.kind = type(estimator).__name__
        self.classes = np.asarray(estimator.classes_) if hasattr(estimator, "classes_") else None
        self._predict = _compile_estimator(estimator)
        # Compile the numba code now, at load, so that the first request (and /ping's 200) does not wait.
        self._predict(np.zeros((1, self.transform.width)))

    def predict_proba(self, table: Table, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Probabilities (classifiers) or values (regressors), in chunks of ``CHUNK_ROWS`` rows.

        Raises:
            ValueOutOfRange: an input too large for the model's arithmetic.
            Cancelled: ``should_stop`` answered True between two chunks.
        """
        parts = []
        for start in range(0, max(table.rows, 1), CHUNK_ROWS):
            if should_stop is not None and should_stop():
                raise Cancelled(f"stopped after {start} of {table.rows} rows")
            chunk = table if table.rows <= CHUNK_ROWS else table.slice(start, start + CHUNK_ROWS)
            try:
                with np.errstate(all="ignore"):  # overflow shows as a non-finite output, which the caller rejects
                    parts.append(self._predict(self.transform.transform(chunk)))
            except ValueOutOfRange as exc:
                raise ValueOutOfRange(exc.row + start, exc.column, exc.value) from None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def predict(self, table: Table) -> np.ndarray:
        out = self.predict_proba(table)
        if self.classes is None:
            return out
        return self.classes[np.argmax(out, axis=1)]


def first_non_finite(values: np.ndarray) -> int | None:
    """The 0-based row of the first non-finite prediction, or None when all are finite."""
    finite = np.isfinite(values) if values.ndim == 1 else np.isfinite(values).all(axis=1)
    if finite.all():
        return None
    return int(np.argmin(finite))
