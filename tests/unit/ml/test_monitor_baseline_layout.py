"""The baseline's column layout: the model's output first, then the features, as Model Monitor matches them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml_code import baseline
from ml_code.schema import DataSchema, DataValidationError, Feature, ProblemType

SCHEMA = DataSchema(
    target="rings",
    problem_type=ProblemType.REGRESSION,
    features=(Feature("sex", "categorical", ("F", "M")), Feature("length", "numeric")),
)


def test_a_regression_prediction_is_a_numeric_first_column() -> None:
    features = pd.DataFrame({"sex": ["M", "F", "M"], "length": [0.4, 0.5, 0.6]})
    statistics, constraints = baseline.build_baseline(features, SCHEMA, pd.Series([9.5, 10.25, 7.0]))
    assert [f["name"] for f in statistics["features"]] == ["predicted_rings", "sex", "length"]
    first = statistics["features"][0]
    assert first["inferred_type"] == "Fractional"
    assert first["numerical_statistics"]["min"] == 7.0 and first["numerical_statistics"]["max"] == 10.25
    assert constraints["features"][0] == {
        "name": "predicted_rings",
        "inferred_type": "Fractional",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": True},
    }


def test_a_feature_named_like_the_prediction_column_is_refused() -> None:
    schema = DataSchema(
        target="rings", problem_type=ProblemType.REGRESSION, features=(Feature("predicted_rings", "numeric"),)
    )
    with pytest.raises(DataValidationError, match="'predicted_rings' has the name of the prediction column"):
        baseline.build_baseline(pd.DataFrame({"predicted_rings": [1.0]}), schema, pd.Series([2.0]))


def test_without_a_model_the_step_fails_and_says_the_layout_needs_the_output(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    train = tmp_path / "train"
    train.mkdir()
    pd.DataFrame({"sex": ["M", "F"] * 5, "length": [0.1 * i for i in range(10)], "rings": range(10)}).to_csv(
        train / "train.csv", index=False
    )
    SCHEMA.write(train / "schema.json")
    assert baseline.main(env={"SM_PROCESSING_ROOT": str(tmp_path)}) == 1
    assert "has no model: the baseline leads with the model's prediction" in capsys.readouterr().err
    assert not (tmp_path / "baseline" / "statistics.json").exists()


def test_a_model_directory_without_a_model_is_an_error_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train = tmp_path / "train"
    train.mkdir()
    pd.DataFrame({"sex": ["M", "F"], "length": [0.1, 0.2], "rings": [1, 2]}).to_csv(train / "train.csv", index=False)
    SCHEMA.write(train / "schema.json")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.txt").write_text("not a model")
    assert baseline.main(env={"SM_PROCESSING_ROOT": str(tmp_path)}) == 1
    assert "model.joblib is missing" in capsys.readouterr().err
