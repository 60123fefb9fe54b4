"""The compiled serving model gives exactly the fitted pipeline's predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml_code.candidates import ENSEMBLE, FAMILIES, FAMILY_NAMES, build_candidate
from ml_code.schema import DataSchema, Feature, ProblemType
from ml_code.serving.compiled import CompiledModel
from tests.datasets import make_frame

SCHEMA_FEATURES = (Feature("a", "numeric"), Feature("b", "numeric"), Feature("colour", "categorical"))


def _fit(problem: str, family_name: str):
    frame = make_frame(problem, rows=300, seed=1)
    frame.loc[::17, "a"] = np.nan  # missing values exercise the imputers
    frame.loc[::23, "colour"] = None
    classes = tuple(sorted(frame["y"].unique())) if problem != "regression" else ()
    schema = DataSchema("y", ProblemType(problem), SCHEMA_FEATURES, classes)
    y = frame["y"].map({c: i for i, c in enumerate(classes)}) if classes else frame["y"]

    def small(name: str) -> dict:
        params = dict(next(f for f in FAMILIES if f.name == name).defaults)
        if "n_estimators" in params:
            params["n_estimators"] = 40
        return params

    params = {name: small(name) for name in FAMILY_NAMES} if family_name == ENSEMBLE else small(family_name)
    pipeline = build_candidate(schema, family_name, params, seed=3, n_jobs=1)
    pipeline.fit(frame[["a", "b", "colour"]], y.to_numpy())
    return pipeline, schema


def _rows(frame: pd.DataFrame) -> list[list]:
    return [
        [math.nan if pd.isna(a) else float(a), float(b), None if c is None or pd.isna(c) else str(c)]
        for a, b, c in frame[["a", "b", "colour"]].itertuples(index=False)
    ]


@pytest.mark.parametrize("family", ["linear", "extra_trees", "xgboost", "ensemble"])
@pytest.mark.parametrize("problem", ["regression", "binary", "multiclass"])
def test_compiled_predictions_equal_the_pipelines(problem: str, family: str) -> None:
    pipeline, schema = _fit(problem, family)
    unseen = make_frame(problem, rows=120, seed=9)
    unseen.loc[::7, "a"] = np.nan
    unseen.loc[::11, "colour"] = None
    unseen.loc[::13, "colour"] = "purple"  # a category never seen in training
    expected = pipeline.predict(unseen[["a", "b", "colour"]])
    got = CompiledModel(pipeline, schema).predict(_rows(unseen))
    if problem == "regression":
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)


def test_compiled_forest_does_not_call_scikit_learns_predict(monkeypatch) -> None:
    from sklearn.ensemble import ExtraTreesRegressor

    pipeline, schema = _fit("regression", "extra_trees")
    compiled = CompiledModel(pipeline, schema)
    monkeypatch.setattr(ExtraTreesRegressor, "predict", lambda *a, **k: pytest.fail("generic path used"))
    assert compiled.predict([[0.1, 5.0, "red"]]).shape == (1,)
