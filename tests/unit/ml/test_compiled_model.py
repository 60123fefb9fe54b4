"""The compiled serving model gives exactly the fitted pipeline's predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml_code.candidates import ENSEMBLE, FAMILIES, FAMILY_NAMES, build_candidate
from ml_code.schema import DataSchema, Feature, ProblemType
from ml_code.serving.compiled import CompiledModel, Table
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


def _rows(frame: pd.DataFrame, schema: DataSchema) -> Table:
    return Table.from_rows(
        schema,
        [
            [math.nan if pd.isna(a) else float(a), float(b), None if c is None or pd.isna(c) else str(c)]
            for a, b, c in frame[["a", "b", "colour"]].itertuples(index=False)
        ],
    )


@pytest.mark.parametrize("family", ["linear", "extra_trees", "xgboost", "ensemble"])
@pytest.mark.parametrize("problem", ["regression", "binary", "multiclass"])
def test_compiled_predictions_equal_the_pipelines(problem: str, family: str) -> None:
    pipeline, schema = _fit(problem, family)
    unseen = make_frame(problem, rows=120, seed=9)
    unseen.loc[::7, "a"] = np.nan
    unseen.loc[::11, "colour"] = None
    unseen.loc[::13, "colour"] = "purple"  # a category never seen in training
    features = unseen[["a", "b", "colour"]]
    compiled = CompiledModel(pipeline, schema)
    expected = pipeline.predict(features)
    got = compiled.predict(_rows(unseen, schema))
    if problem == "regression":
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_allclose(
            compiled.predict_proba(_rows(unseen, schema)), pipeline.predict_proba(features), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("problem", ["regression", "binary", "multiclass"])
def test_compiled_predictions_equal_the_pipelines_across_chunks(problem: str, monkeypatch) -> None:
    # Given a request larger than one chunk of the compiled code
    import ml_code.serving.compiled as compiled_module

    monkeypatch.setattr(compiled_module, "CHUNK_ROWS", 50)
    monkeypatch.setattr(compiled_module, "PARALLEL_ROWS", 20)  # and each chunk split over two threads
    pipeline, schema = _fit(problem, "ensemble")
    unseen = make_frame(problem, rows=333, seed=5)
    # When it is predicted in chunks, Then the result is the pipeline's, row for row
    got = CompiledModel(pipeline, schema).predict(_rows(unseen, schema))
    expected = pipeline.predict(unseen[["a", "b", "colour"]])
    if problem == "regression":
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, expected)


def test_a_value_too_large_to_scale_names_its_row_and_column() -> None:
    from ml_code.serving.compiled import ValueOutOfRange

    # Given a numeric column whose scale is below 1 (as Abalone's lengths in metres)
    frame = make_frame("regression", rows=200, seed=2)
    frame["a"] = frame["a"] * 0.01
    schema = DataSchema("y", ProblemType.REGRESSION, SCHEMA_FEATURES)
    pipeline = build_candidate(schema, "linear", {"penalty": 1e-3}, seed=3, n_jobs=1)
    pipeline.fit(frame[["a", "b", "colour"]], frame["y"].to_numpy())
    # When a finite value scales past float64's range, Then the error names its row and column
    rows = [[0.001, 5.0, "red"], [1e308, 1.0, "red"]]
    with pytest.raises(ValueOutOfRange) as excinfo:
        CompiledModel(pipeline, schema).predict(Table.from_rows(schema, rows))
    assert (excinfo.value.row, excinfo.value.column) == (2, "a")


@pytest.mark.parametrize("family", ["extra_trees", "xgboost"])
def test_compiled_trees_do_not_call_the_librarys_predict(family: str, monkeypatch) -> None:
    from sklearn.ensemble import ExtraTreesRegressor
    from xgboost import Booster, XGBRegressor

    pipeline, schema = _fit("regression", family)
    compiled = CompiledModel(pipeline, schema)
    for cls in (ExtraTreesRegressor, XGBRegressor, Booster):
        monkeypatch.setattr(cls, "predict", lambda *a, **k: pytest.fail("generic path used"))
    monkeypatch.setattr(Booster, "inplace_predict", lambda *a, **k: pytest.fail("generic path used"))
    assert compiled.predict(Table.from_rows(schema, [[0.1, 5.0, "red"]])).shape == (1,)
