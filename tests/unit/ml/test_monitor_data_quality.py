"""ml_code.monitor's data-quality checks, end to end on files: every violation type, and none on clean data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_code.baseline import build_baseline
from ml_code.monitor import MonitorInputError, monitor
from ml_code.schema import DataSchema, Feature, ProblemType

KINDS = {"pred": "numeric", "k": "numeric", "x": "numeric", "colour": "categorical"}


def draw(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "pred": rng.normal(10, 2, rows).round(3),
            "k": rng.integers(0, 6, rows).astype(float),
            "x": rng.lognormal(0, 0.5, rows).round(4),
            "colour": rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]),
        }
    )


def write_baseline(directory: Path, frame: pd.DataFrame, kinds: dict[str, str] = KINDS) -> Path:
    schema = DataSchema(
        target="y",
        problem_type=ProblemType.REGRESSION,
        features=tuple(Feature(name, kinds[name]) for name in frame.columns),
    )
    statistics, constraints = build_baseline(frame, schema)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "statistics.json").write_text(json.dumps(statistics))
    (directory / "constraints.json").write_text(json.dumps(constraints))
    return directory


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return write_baseline(tmp_path / "baseline", draw(4000, seed=1))


def run(baseline: Path, frame: pd.DataFrame, tmp_path: Path, name: str = "batch") -> tuple[set, Path]:
    data = tmp_path / f"{name}.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / f"out-{name}"
    monitor(baseline, data, out)
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations}, out


def test_a_clean_batch_has_no_violation_and_model_monitor_shaped_outputs(baseline: Path, tmp_path: Path) -> None:
    found, out = run(baseline, draw(6000, seed=2), tmp_path)
    assert found == set()
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == 6000
    by_name = {f["name"]: f for f in statistics["features"]}
    assert list(by_name) == ["pred", "k", "x", "colour"]
    assert by_name["k"]["inferred_type"] == "Integral" and by_name["x"]["inferred_type"] == "Fractional"
    numeric = by_name["x"]["numerical_statistics"]
    assert numeric["common"] == {"num_present": 6000, "num_missing": 0}
    assert len(numeric["distribution"]["kll"]["buckets"]) == 10
    assert by_name["colour"]["string_statistics"]["distinct_count"] == 3.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {f"feature_baseline_drift_{c}" for c in KINDS}
    assert all(value < 0.1 for value in metrics.values())


def test_each_injected_problem_is_flagged_on_its_column_alone(baseline: Path, tmp_path: Path) -> None:
    batch = draw(6000, seed=3).astype(object)
    batch.loc[:9, "k"] = 2.5  # a fraction in an Integral column
    batch.loc[10, "pred"] = "n/a-text"  # text in a numeric column: counted, not fatal
    batch.loc[100:699, "x"] = None  # 10 % missing
    batch.loc[700:702, "colour"] = "purple"  # outside the domain
    batch["extra"] = 1
    batch = batch.drop(columns=[])
    found, _ = run(baseline, batch, tmp_path)
    assert found == {
        ("k", "data_type_check"),
        ("pred", "data_type_check"),
        ("x", "completeness_check"),
        ("colour", "categorical_values_check"),
        ("extra", "extra_column_check"),
    }


def test_drift_is_flagged_on_numeric_and_categorical_columns(baseline: Path, tmp_path: Path) -> None:
    batch = draw(6000, seed=4)
    batch["x"] = batch["x"] * 1.5
    rng = np.random.default_rng(5)
    batch["colour"] = rng.choice(["red", "green", "blue"], len(batch), p=[0.35, 0.45, 0.2])
    found, out = run(baseline, batch, tmp_path)
    assert found == {("x", "baseline_drift_check"), ("colour", "baseline_drift_check")}
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert "exceeds threshold: 0.1" in violations[0]["description"]


def test_a_missing_column_is_named(baseline: Path, tmp_path: Path) -> None:
    found, _ = run(baseline, draw(3000, seed=6).drop(columns=["x"]), tmp_path)
    assert found == {("x", "missing_column_check")}


def test_the_same_data_gives_the_same_files(baseline: Path, tmp_path: Path) -> None:
    batch = draw(5000, seed=7)
    batch["x"] = batch["x"] + 0.4
    _, first = run(baseline, batch, tmp_path, "one")
    _, second = run(baseline, batch, tmp_path, "two")
    for name in ("statistics.json", "constraint_violations.json", "metrics.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()


def _edit_config(baseline: Path, **changes: str) -> None:
    path = baseline / "constraints.json"
    constraints = json.loads(path.read_text())
    config = constraints["monitoring_config"]
    for key, value in changes.items():
        target = config["distribution_constraints"] if key in config["distribution_constraints"] else config
        target[key] = value
    path.write_text(json.dumps(constraints))


def test_robust_completeness_tolerates_sampling_noise_but_simple_does_not(tmp_path: Path) -> None:
    # The baseline has 20 % missing values in x; the batch was drawn the same way.
    rng = np.random.default_rng(8)
    frame = draw(4000, seed=8)
    frame.loc[rng.random(4000) < 0.2, "x"] = None
    baseline = write_baseline(tmp_path / "baseline", frame)
    batch = draw(4000, seed=9)
    batch.loc[np.random.default_rng(9).random(4000) < 0.205, "x"] = None  # slightly fewer present values
    observed_present = batch["x"].notna().mean()
    assert observed_present < frame["x"].notna().mean()
    found, _ = run(baseline, batch, tmp_path, "robust")
    assert found == set()
    _edit_config(baseline, comparison_method="Simple")
    found, _ = run(baseline, batch, tmp_path, "simple")
    assert ("x", "completeness_check") in found


def test_disabled_constraints_report_statistics_without_violations(baseline: Path, tmp_path: Path) -> None:
    _edit_config(baseline, evaluate_constraints="Disabled")
    batch = draw(2000, seed=10)
    batch["x"] = batch["x"] * 3
    found, out = run(baseline, batch, tmp_path)
    assert found == set()
    assert json.loads((out / "metrics.json").read_text())["feature_baseline_drift_x"] > 0.1


def test_disabled_comparison_computes_no_drift(baseline: Path, tmp_path: Path) -> None:
    _edit_config(baseline, perform_comparison="Disabled")
    batch = draw(2000, seed=11)
    batch["x"] = batch["x"] * 3
    found, out = run(baseline, batch, tmp_path)
    assert found == set()
    assert json.loads((out / "metrics.json").read_text()) == {}


def test_an_unsupported_drift_method_is_refused_by_name(baseline: Path, tmp_path: Path) -> None:
    _edit_config(baseline, categorical_drift_method="ChiSquared")
    with pytest.raises(MonitorInputError, match=r"constraints\.json: categorical_drift_method 'ChiSquared'"):
        run(baseline, draw(100, seed=12), tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"batch\.csv: file is empty"),
        ("pred,pred\n1,2\n", r"line 1: duplicate column names \['pred'\]"),
        ("pred,,k\n1,2,3\n", r"line 1: column 2 has no name"),
        ("pred,k,x,colour\n1,2,3,red\n1,2,3,red,9\n", r"batch\.csv: Expected 4 fields in line 3, saw 5"),
        ("pred,k,x,colour\n", r"batch\.csv: no rows to check"),
    ],
)
def test_unreadable_csv_is_named_with_its_line(baseline: Path, tmp_path: Path, text: str, message: str) -> None:
    data = tmp_path / "batch.csv"
    data.write_text(text)
    with pytest.raises(MonitorInputError, match=message):
        monitor(baseline, data, tmp_path / "out")


def test_a_baseline_directory_without_its_files_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    data = tmp_path / "batch.csv"
    draw(10, seed=1).to_csv(data, index=False)
    with pytest.raises(MonitorInputError, match=r"empty/statistics\.json: file not found"):
        monitor(tmp_path / "empty", data, tmp_path / "out")
