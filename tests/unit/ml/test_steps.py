"""Preprocess, train, evaluate and baseline, each through its SageMaker contract, on small synthetic data."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ml_code import baseline, evaluate, preprocess, train
from ml_code.artifact import ArtifactError, ModelArtifact
from ml_code.environment import SageMakerEnvironment, serving_workers
from ml_code.schema import DataSchema, DataValidationError, ProblemType, load_dataset
from tests.datasets import make_frame, write_csv

FAST = {"time_budget_seconds": "600", "max_trials": "2", "seed": "7"}


def _split(tmp_path: Path, problem: str, seed: int = 42) -> Path:
    root = tmp_path / "pre"
    write_csv(root / "input" / "data" / "data.csv", make_frame(problem))
    code = preprocess.main(
        ["--target", "y", "--problem-type", problem, "--seed", str(seed)], env={"SM_PROCESSING_ROOT": str(root)}
    )
    assert code == 0
    return root / "output"


def _train(tmp_path: Path, splits: Path, problem: str, **hps: str) -> tuple[int, Path]:
    ml_root = tmp_path / "ml"
    (ml_root / "input" / "config").mkdir(parents=True)
    (ml_root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"target": "y", "problem_type": problem, **FAST, **hps})
    )
    env = {
        "SM_ML_ROOT": str(ml_root),
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(ml_root / "output" / "data"),
    }
    return train.main(env), ml_root


def test_split_is_reproducible_and_disjoint(tmp_path: Path) -> None:
    first = _split(tmp_path / "1", "binary")
    second = _split(tmp_path / "2", "binary")
    other = _split(tmp_path / "3", "binary", seed=3)
    texts = {s: (first / s / f"{s}.csv").read_text() for s in preprocess.SPLITS}
    assert texts == {s: (second / s / f"{s}.csv").read_text() for s in preprocess.SPLITS}
    assert texts["train"] != (other / "train" / "train.csv").read_text()
    sizes = {s: texts[s].count("\n") - 1 for s in preprocess.SPLITS}
    assert sizes == {"train": 168, "validation": 36, "test": 36}
    rows = [set(texts[s].splitlines()[1:]) for s in preprocess.SPLITS]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])
    assert DataSchema.read(first / "test" / "schema.json").classes == ("no", "yes")


def test_each_split_records_the_identity_of_the_input_it_was_cut_from(tmp_path: Path) -> None:
    # Given two input files
    root = tmp_path / "pre"
    frame = make_frame("regression")
    first = write_csv(root / "input" / "data" / "part-1.csv", frame.iloc[:120])
    second = write_csv(root / "input" / "data" / "part-2.csv", frame.iloc[120:])
    # When the preprocess step splits them
    assert (
        preprocess.main(["--target", "y", "--problem-type", "regression"], env={"SM_PROCESSING_ROOT": str(root)}) == 0
    )
    # Then lineage.json beside every split names each file and the identity of the pair
    files = [(f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in (first, second)]
    identity = hashlib.sha256(b"".join(f"{n}\0{h}\n".encode() for n, h in files)).hexdigest()
    for split in preprocess.SPLITS:
        lineage = json.loads((root / "output" / split / "lineage.json").read_text())
        assert lineage["input_sha256"] == identity
        assert [(f["name"], f["sha256"], f["bytes"]) for f in lineage["input_files"]] == [
            (n, h, path.stat().st_size) for (n, h), path in zip(files, (first, second), strict=True)
        ]
        assert (lineage["seed"], lineage["validation_fraction"], lineage["test_fraction"]) == (42, 0.15, 0.15)
    # and the model trained on the splits carries it in metadata.json
    assert _train(tmp_path, root / "output", "regression", families="linear")[0] == 0
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["data"]["input_sha256"] == identity
    # A changed byte is a different identity
    second.write_text(second.read_text().replace("red", "Red", 1))
    assert (
        preprocess.main(["--target", "y", "--problem-type", "regression"], env={"SM_PROCESSING_ROOT": str(root)}) == 0
    )
    assert json.loads((root / "output" / "train" / "lineage.json").read_text())["input_sha256"] != identity


def test_split_is_stratified_for_classification(tmp_path: Path) -> None:
    out = _split(tmp_path, "multiclass")
    for split in preprocess.SPLITS:
        labels = (out / split / f"{split}.csv").read_text().splitlines()[1:]
        assert {row.rsplit(",", 1)[1] for row in labels} == {"low", "mid", "high"}


def test_several_input_parts_are_combined_and_must_share_a_header(tmp_path: Path) -> None:
    frame = make_frame("regression")
    write_csv(tmp_path / "in" / "part-1.csv", frame.iloc[:100])
    write_csv(tmp_path / "in" / "part-2.csv", frame.iloc[100:])
    combined = preprocess.combine_inputs(tmp_path / "in", tmp_path / "work" / "all.csv")
    assert combined.read_text().count("\n") == len(frame) + 1
    write_csv(tmp_path / "in" / "part-3.csv", frame.rename(columns={"a": "alpha"}).iloc[:5])
    with pytest.raises(DataValidationError, match=r"part-3.csv: header .* differs from part-1.csv's"):
        preprocess.combine_inputs(tmp_path / "in", tmp_path / "work" / "all.csv")


def test_preprocess_reports_bad_data_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "pre"
    (root / "input" / "data").mkdir(parents=True)
    (root / "input" / "data" / "data.csv").write_text("a,b\n1,2\n")
    code = preprocess.main(["--target", "y", "--problem-type", "regression"], env={"SM_PROCESSING_ROOT": str(root)})
    assert code == 1
    assert "target column 'y' not found" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["regression", "binary", "multiclass"])
def test_train_selects_the_best_candidate_by_cross_validated_proper_score(tmp_path: Path, problem: str) -> None:
    splits = _split(tmp_path, problem)
    code, ml_root = _train(tmp_path, splits, problem)
    assert code == 0
    board = json.loads((ml_root / "output" / "data" / "leaderboard.json").read_text())
    families = {t["family"] for t in board["trials"]}
    assert {"linear", "extra_trees", "xgboost"} <= families
    proper = board["selection_metric"]
    assert proper == ("mse" if problem == "regression" else "log_loss")
    # 168 + 36 rows are few: every row is scored out of fold, 5 folds
    assert board["selection"] == {
        "method": "cross-validation",
        "folds": 5,
        "scored_rows": 204,
        "fit_rows": [163, 163, 163, 163, 164],
        "proper_score": proper,
    }
    best = min(board["trials"], key=lambda t: t["scores"][proper])
    for ensemble in [t for t in board["trials"] if t["family"] == "ensemble"]:  # present unless one member took all
        for family, params in ensemble["params"]["members"].items():
            best_of_family = min(
                (t for t in board["trials"] if t["family"] == family), key=lambda t: t["scores"][proper]
            )
            assert params == best_of_family["params"]
        assert sum(ensemble["params"]["weights"].values()) == pytest.approx(1.0, abs=1e-5)
        assert sum(w > 0 for w in ensemble["params"]["weights"].values()) >= 2
    assert board["winner"]["scores"][proper] == best["scores"][proper]
    artifact = ModelArtifact.load(tmp_path / "model")
    assert artifact.metadata["winner"]["family"] == board["winner"]["family"]
    assert artifact.schema.feature_names == ["a", "b", "colour"]
    assert artifact.metadata["budget_exhausted"] is False
    assert artifact.metadata["trials_completed"] == artifact.metadata["trials_planned"] == 6


def test_training_is_reproducible_with_a_fixed_seed(tmp_path: Path) -> None:
    splits = _split(tmp_path, "regression")
    _train(tmp_path / "one", splits, "regression")
    _train(tmp_path / "two", splits, "regression")
    test = load_dataset(splits / "test" / "test.csv", target="y", problem_type=ProblemType.REGRESSION)
    one = ModelArtifact.load(tmp_path / "one" / "model").predict_encoded(test.features)
    two = ModelArtifact.load(tmp_path / "two" / "model").predict_encoded(test.features)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(
    ("hps", "message"),
    [
        ({"problem_type": "ranking"}, "hyperparameter 'problem_type' must be one of"),
        ({"families": "linear,svm"}, "hyperparameter 'families': unknown ['svm']"),
        ({"max_trials": "0"}, "hyperparameter 'max_trials' must be at least 1"),
        ({"time_budget_seconds": "-1"}, "hyperparameter 'time_budget_seconds' must be positive"),
    ],
)
def test_bad_hyperparameters_are_named(tmp_path: Path, capsys: pytest.CaptureFixture, hps, message: str) -> None:
    splits = _split(tmp_path, "regression")
    code, ml_root = _train(tmp_path, splits, "regression", **hps)
    assert code == 1
    assert message in capsys.readouterr().err
    assert message in (ml_root / "output" / "failure").read_text()


def test_missing_channel_is_named(tmp_path: Path) -> None:
    env = SageMakerEnvironment.from_env({"SM_CHANNEL_TRAIN": str(tmp_path), "SM_ML_ROOT": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"input channel 'validation' is missing \(have: train\)"):
        env.channel("validation")


def test_sagemaker_hyperparameters_arrive_as_strings_and_are_decoded(tmp_path: Path) -> None:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"max_trials": "3", "target": "rings", "flag": "true"}))
    env = SageMakerEnvironment.from_env({"SM_ML_ROOT": str(tmp_path)})
    assert env.hyperparameters == {"max_trials": 3, "target": "rings", "flag": True}
    assert env.model_dir == tmp_path / "model"


@pytest.mark.parametrize(
    ("problem", "key", "names"),
    [
        ("regression", "regression_metrics", {"mse", "rmse", "mae", "r2"}),
        (
            "binary",
            "binary_classification_metrics",
            {"accuracy", "balanced_accuracy", "f1", "auc", "precision", "recall"},
        ),
        ("multiclass", "multiclass_classification_metrics", {"accuracy", "weighted_f1", "macro_f1", "weighted_auc"}),
    ],
)
def test_evaluation_uses_sagemakers_model_metrics_format(tmp_path: Path, problem: str, key: str, names: set) -> None:
    splits = _split(tmp_path, problem)
    _train(tmp_path, splits, problem)
    root = tmp_path / "eval"
    (root / "test").mkdir(parents=True)
    (root / "test" / "test.csv").write_text((splits / "test" / "test.csv").read_text())
    (root / "model").symlink_to(tmp_path / "model")
    assert evaluate.main(env={"SM_PROCESSING_ROOT": str(root)}) == 0
    report = json.loads((root / "evaluation" / "evaluation.json").read_text())
    assert set(report) == {key, "cross_validation_metrics", "model_build", "lineage"}
    assert report["model_build"]["budget_exhausted"] is False
    # predictions.csv: one row per test row, the label (or value) and, for classifiers, each class's probability
    predictions = (root / "evaluation" / "predictions.csv").read_text()
    header, *rows = [line.split(",") for line in predictions.splitlines()]
    test_rows = (splits / "test" / "test.csv").read_text().splitlines()[1:]
    assert len(rows) == len(test_rows)
    artifact = ModelArtifact.load(tmp_path / "model")
    assert header == ["prediction"] + [f"probability_{c}" for c in artifact.schema.classes]
    test = load_dataset(splits / "test" / "test.csv", target="y", problem_type=ProblemType(problem))
    expected = artifact.decode(artifact.predict_encoded(test.features))
    assert [r[0] for r in rows] == [repr(v) if isinstance(v, float) else v for v in expected]
    # the registry's strings: what the pipeline's RegisterModel step copies into metadata properties
    assert report["lineage"]["budget_exhausted"] == "false"
    assert report["lineage"]["predictions_sha256"] == hashlib.sha256(predictions.encode()).hexdigest()
    assert report["lineage"]["trials_completed"] == "6 of 6"
    for value in report["lineage"].values():  # botocore's CustomerMetadataValue: 1-256 of [\p{L}\p{Z}\p{N}_.:/=+\-@]
        assert re.fullmatch(r"[\w .:/=+\-@]{1,256}", value), value
    assert ("decision_threshold" in report["model_build"]) == (problem == "binary")
    scalar = {k for k, v in report[key].items() if "value" in v}
    assert scalar == names
    assert all(report[key][n]["standard_deviation"] == "NaN" for n in names)  # 36 test rows: too few to bootstrap
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    cv = report["cross_validation_metrics"]
    proper = metadata["selection_metric"]
    assert cv[proper]["value"] == metadata["winner"]["cv_scores"][proper]
    assert cv[proper]["standard_deviation"] == pytest.approx(np.std(metadata["winner"]["cv_fold_losses"], ddof=1))
    if problem == "regression":
        assert report[key]["rmse"]["value"] == pytest.approx(report[key]["mse"]["value"] ** 0.5)
        assert report[key]["r2"]["value"] > 0.8  # the synthetic signal is learnable
    else:
        assert report[key]["accuracy"]["value"] > 0.7
        assert sum(sum(row.values()) for row in report[key]["confusion_matrix"].values()) == 36


def test_evaluate_reads_a_model_tarball_as_sagemaker_mounts_it(tmp_path: Path) -> None:
    import tarfile

    splits = _split(tmp_path, "regression")
    _train(tmp_path, splits, "regression")
    model_input = tmp_path / "mounted"
    model_input.mkdir()
    with tarfile.open(model_input / "model.tar.gz", "w:gz") as archive:
        for f in (tmp_path / "model").iterdir():
            archive.add(f, arcname=f.name)
    from_tarball = evaluate.evaluate(model_input, splits / "test" / "test.csv")
    # The same model evaluates to the same report whether SageMaker hands it packed or unpacked.
    assert from_tarball == evaluate.evaluate(tmp_path / "model", splits / "test" / "test.csv")
    assert from_tarball["regression_metrics"]["rmse"]["value"] > 0


def test_evaluate_rejects_a_directory_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"model\.joblib is missing"):
        ModelArtifact.load(tmp_path)


def test_baseline_matches_model_monitor_formats(tmp_path: Path) -> None:
    splits = _split(tmp_path, "binary")
    _train(tmp_path, splits, "binary")
    root = tmp_path / "bl"
    root.mkdir()
    (root / "train").symlink_to(splits / "train")
    (root / "model").symlink_to(tmp_path / "model")
    assert baseline.main(env={"SM_PROCESSING_ROOT": str(root)}) == 0
    stats = json.loads((root / "baseline" / "statistics.json").read_text())
    cons = json.loads((root / "baseline" / "constraints.json").read_text())
    assert stats["version"] == 0.0 and stats["dataset"]["item_count"] == 168
    by_name = {f["name"]: f for f in stats["features"]}
    # The model's output first, then the features in training order; no target.
    assert list(by_name) == ["predicted_y", "a", "b", "colour"]
    a = by_name["a"]
    assert a["inferred_type"] == "Fractional"
    num = a["numerical_statistics"]
    assert num["common"] == {"num_present": 168, "num_missing": 0}
    assert set(num) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    buckets = num["distribution"]["kll"]["buckets"]
    assert len(buckets) == 10 and sum(b["count"] for b in buckets) == 168
    assert buckets[0]["lower_bound"] == num["min"] and buckets[-1]["upper_bound"] == num["max"]
    assert num["distribution"]["kll"]["sketch"]["parameters"] == {"c": 0.64, "k": 2048.0}
    colour = by_name["colour"]
    assert colour["inferred_type"] == "String"
    cat = colour["string_statistics"]
    assert cat["distinct_count"] == 3.0
    assert {b["value"] for b in cat["distribution"]["categorical"]["buckets"]} == {"red", "green", "blue"}
    constraints = {f["name"]: f for f in cons["features"]}
    assert constraints["b"]["num_constraints"] == {"is_non_negative": True}
    assert constraints["a"]["num_constraints"] == {"is_non_negative": False}
    assert constraints["colour"]["string_constraints"] == {"domains": ["blue", "green", "red"]}
    assert all(f["completeness"] == 1.0 for f in cons["features"])
    assert cons["monitoring_config"]["distribution_constraints"]["perform_comparison"] == "Enabled"


def test_kll_sketch_weights_sum_to_the_count() -> None:
    for n in (10, 2048, 5000, 20000):
        levels = baseline._kll_levels(np.arange(n, dtype=float))
        weight = sum(len(items) * 2**level for level, items in enumerate(levels))
        assert abs(weight - n) <= 2 ** (len(levels) - 1), n
        assert max(len(items) for items in levels) <= 2048


def test_integral_columns_are_typed_integral(tmp_path: Path) -> None:
    frame = make_frame("regression")
    frame["count"] = range(len(frame))
    path = write_csv(tmp_path / "t.csv", frame)
    dataset = load_dataset(path, target="y", problem_type=ProblemType.REGRESSION)
    stats, _ = baseline.build_baseline(dataset.features, dataset.schema)
    assert {f["name"]: f["inferred_type"] for f in stats["features"]}["count"] == "Integral"


@pytest.mark.parametrize(("value", "expected"), [(None, 2), ("", 2), ("3", 3)])
def test_serving_workers_from_sagemaker_variable(monkeypatch, value, expected) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    env = {} if value is None else {"SAGEMAKER_MODEL_SERVER_WORKERS": value}
    assert serving_workers(env) == expected


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_worker_count_is_named(value: str) -> None:
    with pytest.raises(ValueError, match="SAGEMAKER_MODEL_SERVER_WORKERS"):
        serving_workers({"SAGEMAKER_MODEL_SERVER_WORKERS": value})


def test_split_parts_are_combined_and_empty_parts_passed_over(tmp_path: Path) -> None:
    frame = make_frame("regression")
    write_csv(tmp_path / "parts" / "part-00000.csv", frame.iloc[:100])
    (tmp_path / "parts" / "part-00001.csv").write_text("a,b,colour,y\n")  # an empty Spark partition
    write_csv(tmp_path / "parts" / "part-00002.csv", frame.iloc[100:])
    combined = preprocess.combine_inputs(tmp_path / "parts", tmp_path / "work" / "all.csv")
    assert combined.read_text().count("\n") == len(frame) + 1
    for part in (tmp_path / "parts").iterdir():
        part.write_text("a,b,colour,y\n")
    with pytest.raises(DataValidationError, match="none of its 3 CSV files has a data row"):
        preprocess.combine_inputs(tmp_path / "parts", tmp_path / "work" / "all.csv")
