"""input_fn -> predict_fn -> output_fn on saved artifacts: decision threshold, probabilities, options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml_code.artifact import ModelArtifact
from ml_code.candidates import build_candidate
from ml_code.schema import DataSchema, Feature, ProblemType
from ml_code.serving.inference import (
    CSV,
    JSON,
    RequestError,
    custom_attributes,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
)
from tests.datasets import make_frame

COLOURS = ("blue", "green", "red")
FEATURES = (Feature("a", "numeric"), Feature("b", "numeric"), Feature("colour", "categorical", COLOURS))


def _save(tmp_path: Path, problem: str, metadata: dict | None = None) -> tuple[Path, ModelArtifact]:
    frame = make_frame(problem, rows=300, seed=1)
    classes = tuple(sorted(frame["y"].unique())) if problem != "regression" else ()
    schema = DataSchema("y", ProblemType(problem), FEATURES, classes)
    y = frame["y"].map({c: i for i, c in enumerate(classes)}) if classes else frame["y"]
    pipeline = build_candidate(schema, "linear", {"penalty": 1 / 300}, seed=3, n_jobs=1)  # C = 1 on 300 rows
    pipeline.fit(frame[["a", "b", "colour"]], y.to_numpy())
    artifact = ModelArtifact(pipeline, schema, metadata or {})
    model_dir = tmp_path / problem
    artifact.save(model_dir)
    return model_dir, artifact


def _body(rows: int = 200) -> tuple[bytes, np.ndarray]:
    frame = make_frame("binary", rows=rows, seed=8)
    lines = [f"{a},{b},{c}" for a, b, c in frame[["a", "b", "colour"]].itertuples(index=False)]
    return ("\n".join(lines) + "\n").encode(), frame


def test_binary_labels_follow_the_decision_threshold_in_metadata(tmp_path: Path) -> None:
    # Given the same fitted classifier saved without a threshold and with decision_threshold 0.99
    default_dir, artifact = _save(tmp_path, "binary")
    strict_dir = tmp_path / "strict"
    ModelArtifact(artifact.pipeline, artifact.schema, {"decision_threshold": 0.99}).save(strict_dir)
    body, frame = _body()
    p_positive = artifact.pipeline.predict_proba(frame[["a", "b", "colour"]])[:, 1]
    labels = np.asarray(artifact.schema.classes)
    # When both serve the same rows
    served = {}
    for name, model_dir in (("default", default_dir), ("strict", strict_dir)):
        model = model_fn(model_dir)
        served[name] = np.asarray(predict_fn(input_fn(body, CSV, model), model).labels)
    # Then the positive class is chosen when P(positive) >= the threshold (0.5 when absent)
    np.testing.assert_array_equal(served["default"], labels[(p_positive >= 0.5).astype(int)])
    np.testing.assert_array_equal(served["strict"], labels[(p_positive >= 0.99).astype(int)])
    assert (served["default"] != served["strict"]).sum() > 10  # the threshold really changed answers


@pytest.mark.parametrize("threshold", [0, 1, 1.5, -0.1, "0.7", True, None])
def test_an_invalid_decision_threshold_refuses_to_load(tmp_path: Path, threshold) -> None:
    _, artifact = _save(tmp_path, "binary")
    ModelArtifact(artifact.pipeline, artifact.schema, {"decision_threshold": threshold}).save(tmp_path / "bad")
    with pytest.raises(ValueError, match="decision_threshold must be a number in \\(0, 1\\)"):
        model_fn(tmp_path / "bad")


@pytest.mark.parametrize("problem", ["binary", "multiclass"])
def test_probabilities_on_request_by_header_and_by_json_option(tmp_path: Path, problem: str) -> None:
    model_dir, artifact = _save(tmp_path, problem)
    model = model_fn(model_dir)
    body, frame = _body(20)
    expected = artifact.pipeline.predict_proba(frame[["a", "b", "colour"]])
    # CSV, asked for in SageMaker's CustomAttributes header
    request = input_fn(body, CSV, model, "trace=abc; probabilities=true")
    csv_lines = output_fn(predict_fn(request, model), CSV).decode().splitlines()
    assert len(csv_lines) == 20
    parsed = np.array([[float(v) for v in line.split(",")[1:]] for line in csv_lines])
    np.testing.assert_allclose(parsed, expected, rtol=1e-9)
    assert {line.split(",")[0] for line in csv_lines} <= set(artifact.schema.classes)
    # JSON, asked for in the body
    instances = [[a, b, c] for a, b, c in frame[["a", "b", "colour"]].itertuples(index=False)]
    json_body = json.dumps({"instances": instances, "probabilities": True}).encode()
    document = json.loads(output_fn(predict_fn(input_fn(json_body, JSON, model), model), JSON))
    assert document["classes"] == list(artifact.schema.classes)
    np.testing.assert_allclose(document["probabilities"], expected, rtol=1e-9)
    assert document["predictions"] == [line.split(",")[0] for line in csv_lines]
    # not asked: labels only
    assert set(json.loads(output_fn(predict_fn(input_fn(body, CSV, model), model), JSON))) == {"predictions"}


def test_probabilities_from_a_regressor_or_a_bad_flag_are_400s(tmp_path: Path) -> None:
    model = model_fn(_save(tmp_path, "regression")[0])
    with pytest.raises(RequestError, match="only for classifiers") as excinfo:
        input_fn(b"0.1,2,red\n", CSV, model, "probabilities=true")
    assert excinfo.value.status == 400
    with pytest.raises(RequestError, match="probabilities must be true or false"):
        input_fn(b"0.1,2,red\n", CSV, model, "probabilities=maybe")
    with pytest.raises(RequestError, match="JSON body: probabilities must be true or false"):
        input_fn(b'{"instances": [[0.1, 2, "red"]], "probabilities": 3}', JSON, model)


def test_custom_attributes_parse_like_sagemakers_header() -> None:
    assert custom_attributes("probabilities=true;trace=1, Other = x") == {
        "probabilities": "true",
        "trace": "1",
        "other": "x",
    }
    assert custom_attributes(None) == {}


def test_an_output_that_would_not_be_finite_is_a_400_naming_the_row(tmp_path: Path) -> None:
    # A finite input whose prediction overflows (a linear model far outside its training range)
    model = model_fn(_save(tmp_path, "regression")[0])
    with pytest.raises(RequestError) as excinfo:
        predict_fn(input_fn(b"0.1,2,red\n1.5e308,2,red\n", CSV, model), model)
    assert excinfo.value.status == 400
    assert excinfo.value.message.startswith("row 2")
