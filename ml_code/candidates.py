"""Candidate model families and their search spaces: regularized linear, tree ensemble, gradient boosting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    build: Callable[[ProblemType, dict[str, Any], int, int], Any]  # (problem, params, seed, n_jobs) -> estimator
    defaults: dict[str, Any]
    space: dict[str, Any]


def _linear(problem: ProblemType, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    if problem is ProblemType.REGRESSION:
        return Ridge(alpha=params["alpha"])
    return LogisticRegression(C=1.0 / params["alpha"], max_iter=2000, random_state=seed)


def _trees(problem: ProblemType, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    cls = ExtraTreesRegressor if problem is ProblemType.REGRESSION else ExtraTreesClassifier
    return cls(random_state=seed, n_jobs=n_jobs, **params)


def _boosting(problem: ProblemType, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    common = {"random_state": seed, "n_jobs": n_jobs, "tree_method": "hist", "verbosity": 0, **params}
    if problem is ProblemType.REGRESSION:
        return XGBRegressor(objective="reg:squarederror", **common)
    return XGBClassifier(**common)


FAMILIES: tuple[Family, ...] = (
    Family(
        name="linear",
        build=_linear,
        defaults={"alpha": 1.0},
        space={"alpha": loguniform(1e-3, 1e2)},
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
# The blend of each family's best configuration: soft voting for classifiers, the mean for regressors.
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


def make_pipeline(schema: DataSchema, family: Family, params: dict[str, Any], seed: int, n_jobs: int) -> Pipeline:
    """The full model: the schema's preprocessing, then the family's estimator with ``params``."""
    return Pipeline(
        [("preprocess", build_preprocessor(schema)), ("model", family.build(schema.problem_type, params, seed, n_jobs))]
    )


def make_ensemble_pipeline(schema: DataSchema, members: dict[str, dict[str, Any]], seed: int, n_jobs: int) -> Pipeline:
    """One shared preprocessing, then the average of each member family's estimator (params per family)."""
    estimators = [
        (name, next(f for f in FAMILIES if f.name == name).build(schema.problem_type, params, seed, n_jobs))
        for name, params in members.items()
    ]
    if schema.problem_type is ProblemType.REGRESSION:
        model: Any = VotingRegressor(estimators)
    else:
        model = VotingClassifier(estimators, voting="soft")
    return Pipeline([("preprocess", build_preprocessor(schema)), ("model", model)])


def build_candidate(schema: DataSchema, family: str, params: dict[str, Any], seed: int, n_jobs: int) -> Pipeline:
    """The pipeline of a trial: a family's estimator, or the ensemble of member families' estimators."""
    if family == ENSEMBLE:
        return make_ensemble_pipeline(schema, params, seed, n_jobs)
    return make_pipeline(schema, next(f for f in FAMILIES if f.name == family), params, seed, n_jobs)
