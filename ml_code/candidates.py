"""Candidate model families and their search spaces: regularized linear, tree ensemble, gradient boosting.

How the spaces were chosen. Every family sees standardized numerics and one-hot categoricals.
The linear family's strength ``penalty`` is per row: Ridge gets ``alpha = penalty * rows`` and
logistic regression ``C = 1 / (penalty * rows)``. With standardized features ``X'X / rows`` has a
unit diagonal, so ``penalty`` compares the L2 term with the *mean* loss whatever the data size:
1e-5 is practically unregularized, 1e-3 (the default) is scikit-learn's C=1 on about a thousand
rows, and 1 shrinks ridge coefficients about halfway. A fixed ``alpha`` instead means a
different model at every size (the old space's alpha=57 on 480 rows shrank a logistic model
to near-constant scores). The tree spaces are the usual ranges (XGBoost's own docs; the
learning rate and rounds traded against each other), and the defaults are each library's
well-tried settings, always fitted first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xgboost
from scipy.stats import loguniform, randint, uniform
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, VotingClassifier, VotingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from ml_code.schema import DataSchema, ProblemType


@dataclass(frozen=True)
class Family:
    """One kind of model: how to build it, its defaults, and the space the search samples."""

    name: str
    # (problem, params, seed, n_jobs, rows, stop) -> estimator; rows: the size of the data it will fit
    build: Callable[[ProblemType, dict[str, Any], int, int, int, StopCheck | None], Any]
    defaults: dict[str, Any]
    space: dict[str, Any]


class StopCheck(xgboost.callback.TrainingCallback):
    """Stops a search fit at a deadline (time.monotonic()); ``stopped`` says whether it did.

    Boosting checks it after every round (it is XGBoost's callback); extra trees are grown in
    chunks of ``TREE_CHUNK`` trees with a check between chunks (``fit_until``). A stopped fit is
    discarded. The search passes one so that a single long fit cannot overrun the time budget;
    the final refit never gets one, so the saved model is the configuration that was scored.
    """

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline
        self.stopped = False

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if time.monotonic() > self.deadline:
            self.stopped = True
        return self.stopped


# Extra trees grow this many trees at a time when a deadline may stop them. Growing a forest in
# chunks (warm start) gives the same trees as one fit: scikit-learn draws each new tree's seed
# after skipping the seeds of the trees already grown (tests/unit/ml/test_selection.py checks it).
TREE_CHUNK = 25


def fit_until(pipeline: Pipeline, x: Any, y: Any, stop: StopCheck | None) -> None:
    """Fit ``pipeline``; with ``stop``, give up at its deadline (``stop.stopped`` is then True).

    Boosting stops itself (``stop`` is its callback, set by ``build_candidate``). Extra trees
    are grown ``TREE_CHUNK`` at a time and checked between chunks. Linear models are quick
    and are not interrupted.
    """
    model = pipeline.named_steps["model"]
    if stop is None or not isinstance(model, ExtraTreesRegressor | ExtraTreesClassifier):
        pipeline.fit(x, y)
        return
    total = int(model.n_estimators)
    features = pipeline.named_steps["preprocess"].fit_transform(x, y)
    model.set_params(warm_start=True)
    for grown in range(min(TREE_CHUNK, total), total + TREE_CHUNK, TREE_CHUNK):
        model.set_params(n_estimators=min(grown, total))
        model.fit(features, y)
        if min(grown, total) < total and time.monotonic() > stop.deadline:
            stop.stopped = True
            return
    model.set_params(warm_start=False)


def _linear(
    problem: ProblemType, params: dict[str, Any], seed: int, n_jobs: int, rows: int, stop: StopCheck | None
) -> Any:
    strength = params["penalty"] * max(rows, 1)
    if problem is ProblemType.REGRESSION:
        return Ridge(alpha=strength)
    return LogisticRegression(C=1.0 / strength, max_iter=5000, random_state=seed)


def _trees(
    problem: ProblemType, params: dict[str, Any], seed: int, n_jobs: int, rows: int, stop: StopCheck | None
) -> Any:
    cls = ExtraTreesRegressor if problem is ProblemType.REGRESSION else ExtraTreesClassifier
    return cls(random_state=seed, n_jobs=n_jobs, **params)


def _boosting(
    problem: ProblemType, params: dict[str, Any], seed: int, n_jobs: int, rows: int, stop: StopCheck | None
) -> Any:
    common = {"random_state": seed, "n_jobs": n_jobs, "tree_method": "hist", "verbosity": 0, **params}
    if stop is not None:
        common["callbacks"] = [stop]
    if problem is ProblemType.REGRESSION:
        return XGBRegressor(objective="reg:squarederror", **common)
    return XGBClassifier(**common)


FAMILIES: tuple[Family, ...] = (
    Family(
        name="linear",
        build=_linear,
        defaults={"penalty": 1e-3},
        space={"penalty": loguniform(1e-5, 1.0)},
    ),
    Family(
        name="extra_trees",
        build=_trees,
        defaults={"n_estimators": 200, "min_samples_leaf": 3, "max_features": 0.7},
        space={
            "n_estimators": randint(100, 400),
            "min_samples_leaf": randint(1, 12),
            "max_features": uniform(0.3, 0.7),
        },
    ),
    Family(
        name="xgboost",
        build=_boosting,
        defaults={
            "n_estimators": 300,
            "learning_rate": 0.05,
            "max_depth": 4,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "min_child_weight": 5,
        },
        space={
            "n_estimators": randint(100, 700),
            "learning_rate": loguniform(0.01, 0.2),
            "max_depth": randint(2, 7),
            "subsample": uniform(0.5, 0.5),
            "colsample_bytree": uniform(0.5, 0.5),
            "min_child_weight": randint(1, 20),
            "reg_lambda": loguniform(0.1, 20),
        },
    ),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)
# The blend of each family's best configuration, weighted: soft voting for classifiers, a weighted
# mean for regressors. Its weights are fitted on out-of-fold predictions (see train.py).
ENSEMBLE = "ensemble"


def build_preprocessor(schema: DataSchema) -> ColumnTransformer:
    """Impute, scale numerics and one-hot encode categoricals, in the schema's column order.

    It is fitted inside the model pipeline, so serving applies exactly the training transform.
    """
    numeric = [f.name for f in schema.features if f.kind == "numeric"]
    categorical = [f.name for f in schema.features if f.kind == "categorical"]
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def family(name: str) -> Family:
    """The family called ``name``."""
    return next(f for f in FAMILIES if f.name == name)


def build_candidate(
    schema: DataSchema,
    name: str,
    params: dict[str, Any],
    seed: int,
    n_jobs: int,
    rows: int | None = None,
    stop: StopCheck | None = None,
) -> Pipeline:
    """The pipeline of a trial: the schema's preprocessing, then the family's estimator with ``params``.

    For the ensemble, ``params`` is ``{"members": {family: params}, "weights": {family: weight}}``:
    one shared preprocessing, then the weighted average of the members (zero-weight members left out).
    A plain ``{family: params}`` is the equally weighted blend.

    Args:
        rows: how many rows it will be fitted on (the linear family's penalty is per row); None
            uses the penalty as the raw strength.
        stop: a deadline for boosting fits during the search.
    """
    problem = schema.problem_type
    rows = 1 if rows is None else rows
    if name == ENSEMBLE:
        if "members" not in params:
            params = {"members": params, "weights": dict.fromkeys(params, 1.0)}
        weights = params["weights"]
        estimators = [
            (member, family(member).build(problem, member_params, seed, n_jobs, rows, stop))
            for member, member_params in params["members"].items()
            if weights[member] > 0
        ]
        kept = [weights[member] for member, _ in estimators]
        if problem is ProblemType.REGRESSION:
            model: Any = VotingRegressor(estimators, weights=kept)
        else:
            model = VotingClassifier(estimators, voting="soft", weights=kept)
    else:
        model = family(name).build(problem, params, seed, n_jobs, rows, stop)
    return Pipeline([("preprocess", build_preprocessor(schema)), ("model", model)])
