"""Model selection: ties, tiny data, the decision threshold, the time budget, and failures SageMaker can show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_code import evaluate, local_run, metrics, preprocess, train
from ml_code.artifact import ModelArtifact
from ml_code.candidates import build_candidate
from ml_code.schema import DataSchema, ProblemType, load_dataset
from tests.datasets import make_frame, write_csv

FAST = {"time_budget_seconds": "600", "max_trials": "2", "seed": "7"}


def _split(tmp_path: Path, frame: pd.DataFrame, problem: str) -> Path:
    write_csv(tmp_path / "raw.csv", frame)
    preprocess.split_dataset(tmp_path / "raw.csv", tmp_path / "splits", target="y", problem_type=ProblemType(problem))
    return tmp_path / "splits"


def _train(tmp_path: Path, splits: Path, problem: str, **hps: str) -> tuple[int, Path]:
    ml_root = tmp_path / "ml"
    env = {
        "SM_HPS": json.dumps({"target": "y", "problem_type": problem, **FAST, **hps}),
        "SM_ML_ROOT": str(ml_root),
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(ml_root / "output" / "data"),
    }
    return train.main(env), ml_root


def _trial(index: int, family: str, loss: float, accuracy: float, folds: list[float]) -> train.Trial:
    return train.Trial(family, {}, {"log_loss": loss, "accuracy": accuracy}, 0.0, fold_losses=folds, index=index)


# --- ties ----------------------------------------------------------------------------------------


def test_equal_proper_scores_are_settled_by_the_users_metric_not_by_plan_order() -> None:
    first = _trial(0, "linear", 0.25, 0.90, [0.2, 0.3])
    later = _trial(5, "xgboost", 0.25, 0.93, [0.1, 0.4])
    key = lambda t: train.rank_key(t, ProblemType.BINARY, "accuracy")  # noqa: E731
    assert min([first, later], key=key) is later
    assert min([later, first], key=key) is later


def test_equal_scores_and_metric_go_to_the_steadier_candidate() -> None:
    noisy = _trial(0, "linear", 0.25, 0.90, [0.05, 0.45])
    steady = _trial(7, "extra_trees", 0.25, 0.90, [0.24, 0.26])
    key = lambda t: train.rank_key(t, ProblemType.BINARY, "accuracy")  # noqa: E731
    assert min([noisy, steady], key=key) is steady


def test_float_noise_in_the_proper_score_is_a_tie() -> None:
    a = _trial(0, "linear", 0.25, 0.90, [0.25])
    b = _trial(1, "xgboost", 0.25 + 1e-16, 0.95, [0.25])
    assert min([a, b], key=lambda t: train.rank_key(t, ProblemType.BINARY, "accuracy")) is b


def test_a_blend_that_keeps_one_member_is_not_a_candidate() -> None:
    y = np.array([0, 1] * 20)
    good = np.column_stack([1 - (p := np.where(y == 1, 0.9, 0.1)), p])
    useless = np.full((40, 2), 0.5)
    members = {
        "linear": train.Trial("linear", {"penalty": 1e-3}, {}, 0.0, oof=good.tolist()),
        "xgboost": train.Trial("xgboost", {}, {}, 0.0, oof=useless.tolist()),
    }
    blend, _ = train.blend_trial(ProblemType.BINARY, y, members, seed=0, index=9)
    assert blend.params["weights"] == {"linear": 1.0, "xgboost": 0.0}


def test_blend_weights_favour_the_better_member_and_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    sharp = y + rng.normal(scale=0.3, size=400)
    blurred = y + rng.normal(scale=0.9, size=400)
    weights = train.fit_blend_weights(ProblemType.REGRESSION, y, np.stack([sharp, blurred]))
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] > 0.8 > weights[1] > 0.0  # inverse-variance weighting gives 0.9 / 0.1


# --- tiny data -----------------------------------------------------------------------------------


def test_tiny_data_is_cross_validated_with_as_many_folds_as_the_rarest_class_allows() -> None:
    y = np.array([0] * 9 + [1] * 3)
    settings = train.TrainingSettings(target="y", problem_type=ProblemType.BINARY, seed=1)
    selection = train.plan_selection(ProblemType.BINARY, y, 9, settings, ("no", "yes"))
    assert selection.method == "cross-validation" and len(selection.folds) == 3
    held = np.concatenate([scored for _, scored in selection.folds])
    assert sorted(held) == list(range(12))  # every row scored exactly once
    assert all(y[scored].sum() == 1 for _, scored in selection.folds)  # stratified


def test_a_class_with_one_row_is_named() -> None:
    y = np.array([0] * 9 + [1])
    settings = train.TrainingSettings(target="y", problem_type=ProblemType.BINARY)
    with pytest.raises(train.DataValidationError, match=r"class 'yes' has 1 row\(s\) in train \+ validation"):
        train.plan_selection(ProblemType.BINARY, y, 8, settings, ("no", "yes"))


def test_above_the_cross_validation_limit_the_validation_split_is_the_holdout() -> None:
    y = np.arange(100, dtype=float)
    settings = train.TrainingSettings(target="y", problem_type=ProblemType.REGRESSION, cv_max_rows=50)
    selection = train.plan_selection(ProblemType.REGRESSION, y, 80, settings)
    assert selection.method == "holdout"
    ((fit_rows, scored),) = selection.folds
    assert list(fit_rows) == list(range(80)) and list(scored) == list(range(80, 100))


def test_training_on_a_few_dozen_rows_completes_and_records_its_selection(tmp_path: Path) -> None:
    splits = _split(tmp_path, make_frame("binary", rows=30, seed=3), "binary")
    code, _ = _train(tmp_path, splits, "binary", families="linear,xgboost")
    assert code == 0
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["selection"]["method"] == "cross-validation"
    assert metadata["selection"]["scored_rows"] == 25  # train + validation of 30 rows
    assert 0.0 <= metadata["decision_threshold"] <= 1.0


# --- the decision threshold ----------------------------------------------------------------------


def test_threshold_maximizes_the_metric_on_out_of_fold_probabilities() -> None:
    # Positives score 0.30-0.40, negatives 0.05-0.20: every 0.5 cut is wrong, a 0.25 cut is perfect.
    positive = np.array([0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.4])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    threshold, accuracy = train.choose_threshold(y, positive, "accuracy")
    assert threshold == pytest.approx(0.25) and accuracy == 1.0
    assert metrics.decide(np.column_stack([1 - positive, positive]), threshold).tolist() == y.tolist()


def test_threshold_ties_go_to_the_cut_nearest_one_half() -> None:
    positive = np.array([0.1, 0.2, 0.8, 0.9])
    y = np.array([0, 0, 1, 1])
    threshold, _ = train.choose_threshold(y, positive, "f1")
    assert threshold == pytest.approx(0.5)  # any cut in (0.2, 0.8) is perfect: the midpoint is 0.5


def test_threshold_for_a_threshold_free_metric_is_tuned_for_accuracy() -> None:
    positive = np.array([0.05, 0.1, 0.3, 0.35])
    y = np.array([0, 0, 1, 1])
    assert train.choose_threshold(y, positive, "auc") == train.choose_threshold(y, positive, "accuracy")


def test_stored_threshold_decides_the_models_predictions_and_evaluation(tmp_path: Path) -> None:
    splits = _split(tmp_path, make_frame("binary", rows=240), "binary")
    code, _ = _train(tmp_path, splits, "binary", metric="f1")
    assert code == 0
    artifact = ModelArtifact.load(tmp_path / "model")
    assert artifact.metadata["threshold_metric"] == "f1"
    stored = artifact.metadata["decision_threshold"]
    assert isinstance(stored, float) and artifact.decision_threshold == stored
    test = load_dataset(splits / "test" / "test.csv", target="y", problem_type=ProblemType.BINARY)
    positive = artifact.predict_proba(test.features)[:, 1]
    np.testing.assert_array_equal(artifact.predict_encoded(test.features), (positive >= stored).astype(int))

    # Move the stored threshold to between two test probabilities: predictions and evaluation follow it.
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    metadata["decision_threshold"] = float(np.sort(positive)[len(positive) // 2])
    (tmp_path / "model" / "metadata.json").write_text(json.dumps(metadata))
    moved = ModelArtifact.load(tmp_path / "model")
    expected = (positive >= metadata["decision_threshold"]).astype(int)
    np.testing.assert_array_equal(moved.predict_encoded(test.features), expected)
    report = evaluate.evaluate(tmp_path / "model", splits / "test" / "test.csv")
    truth = moved.encode_target(test.target)
    accuracy = report["binary_classification_metrics"]["accuracy"]["value"]
    assert accuracy == pytest.approx(float(np.mean(expected == truth)))


# --- evaluation's standard deviations -------------------------------------------------------------


def test_evaluation_bootstraps_standard_deviations_from_200_test_rows(tmp_path: Path) -> None:
    splits = _split(tmp_path, make_frame("regression", rows=1400), "regression")
    assert sum(1 for _ in (splits / "test" / "test.csv").open()) - 1 >= 200
    code, _ = _train(tmp_path, splits, "regression", families="linear")
    assert code == 0
    first = evaluate.evaluate(tmp_path / "model", splits / "test" / "test.csv")
    again = evaluate.evaluate(tmp_path / "model", splits / "test" / "test.csv")
    body = first["regression_metrics"]
    assert first == again  # seeded
    for name in ("mse", "rmse", "mae", "r2"):
        assert isinstance(body[name]["standard_deviation"], float) and body[name]["standard_deviation"] > 0
    # the bootstrap's spread of the mean squared error is close to the textbook standard error
    test = load_dataset(splits / "test" / "test.csv", target="y", problem_type=ProblemType.REGRESSION)
    squared = (ModelArtifact.load(tmp_path / "model").predict_encoded(test.features) - test.target.to_numpy()) ** 2
    textbook = squared.std(ddof=1) / np.sqrt(len(squared))
    assert body["mse"]["standard_deviation"] == pytest.approx(textbook, rel=0.25)


# --- the time budget and reproducibility ---------------------------------------------------------


def test_a_spent_budget_keeps_one_model_and_says_what_it_cut(tmp_path: Path, capsys) -> None:
    # Given a budget that is spent before the search starts
    splits = _split(tmp_path, make_frame("regression"), "regression")
    code, ml_root = _train(tmp_path, splits, "regression", time_budget_seconds="0.001", max_trials="4")
    # Then the plan's first trial alone is fitted, the refit uses the fewest rows, and the run says so
    assert code == 0
    out = capsys.readouterr().out
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    rows = metadata["data"]["rows"]
    assert metadata["refit_rows"] < rows
    assert metadata["budget_cut"] == [
        "11 of 12 planned trials were not completed",
        f"the final model was refitted on a seeded sample of {metadata['refit_rows']:,} of the {rows:,} rows",
    ]
    assert f"TIME BUDGET REACHED: {'; '.join(metadata['budget_cut'])}" in out
    assert "OVER BUDGET by" in out
    assert metadata["budget_exhausted"] is True
    assert (metadata["trials_planned"], metadata["trials_completed"]) == (12, 1)
    assert metadata["budget"]["seconds"] == 0.001
    assert metadata["budget"]["over_budget_seconds"] > 0
    assert set(metadata["budget"]["phases"]) == {"load", "search", "select", "refit", "save"}
    board = json.loads((ml_root / "output" / "data" / "leaderboard.json").read_text())
    assert board["budget_exhausted"] is True and board["budget_cut"] == metadata["budget_cut"]
    assert [t["index"] for t in board["trials"]] == [0]


def test_an_ample_budget_changes_nothing_and_says_so(tmp_path: Path, capsys) -> None:
    splits = _split(tmp_path, make_frame("regression"), "regression")
    assert _train(tmp_path, splits, "regression")[0] == 0
    out = capsys.readouterr().out
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["budget_exhausted"] is False and metadata["budget_cut"] == []
    assert metadata["refit_rows"] == metadata["data"]["rows"] and metadata["refit_on"] == "train+validation"
    assert metadata["budget"]["over_budget_seconds"] == 0
    assert "TIME BUDGET" not in out and "OVER BUDGET" not in out
    assert "of a 600 s budget (load" in out


def test_the_search_stops_where_the_refit_reserve_begins(tmp_path: Path) -> None:
    # Given a refit so large that its estimate takes the whole budget once one trial has been timed
    splits = _split(tmp_path, make_frame("regression"), "regression")
    data = load_dataset(splits / "train" / "train.csv", target="y", problem_type=ProblemType.REGRESSION)
    settings = train.TrainingSettings(target="y", problem_type=ProblemType.REGRESSION, max_trials=3, seed=1)
    y = data.target.to_numpy()
    selection = train.plan_selection(ProblemType.REGRESSION, y, len(y), settings)
    budget = train.Budget(seconds=3600.0)
    # When the trials are fitted
    trials, skipped = train.fit_trials(
        data.schema,
        data.features,
        y,
        selection,
        train.plan_trials(settings),
        settings,
        1,
        log=lambda _: None,
        budget=budget,
        refit_rows=10**12,
    )
    # Then only the first one ran: the rest of the budget is kept for the refit, which the estimate says needs it
    assert [t.index for t in trials] == [0] and skipped == 8
    assert budget.reserve == pytest.approx(train.estimate_refit_seconds(trials, selection, 10**12, 1))
    assert budget.search_deadline < budget.start


def _holdout(n_rows: int, fit: int) -> train.Selection:
    fit_rows = np.arange(fit)
    scored = np.arange(n_rows - 100, n_rows)
    return train.Selection("holdout", ((fit_rows, scored),), scored, "mse")


def test_the_refit_uses_every_row_when_its_estimate_fits_and_fewer_when_not() -> None:
    selection = _holdout(1_000_000, 100_000)
    trees = train.Trial("extra_trees", {"n_estimators": 200}, {}, 10.0)  # 10 s on 100,000 rows
    full = train.estimate_refit_seconds([trees], selection, 1_000_000, 2)
    assert full == pytest.approx(train.REFIT_MARGIN * 10.0 * 10 ** train.REFIT_GROWTH["extra_trees"])
    # Enough time: every row
    rows = train.refit_rows(trees, [trees], selection, 1_000_000, 2, full + 1, seed=3)
    assert len(rows) == 1_000_000
    # Less: the largest seeded sample whose estimate fits, the same one each time
    rows = train.refit_rows(trees, [trees], selection, 1_000_000, 2, 60.0, seed=3)
    assert train.estimate_refit_seconds([trees], selection, len(rows), 2) <= 60.0
    assert train.estimate_refit_seconds([trees], selection, len(rows) + 1, 2) > 60.0
    assert np.array_equal(rows, train.refit_rows(trees, [trees], selection, 1_000_000, 2, 60.0, seed=3))
    assert len(np.unique(rows)) == len(rows) and np.all(np.diff(rows) > 0)
    # None left: the search's own rows, so the saved model is the configuration as it was scored
    rows = train.refit_rows(trees, [trees], selection, 1_000_000, 2, -5.0, seed=3)
    assert np.array_equal(rows, selection.folds[0][0])


def test_a_blends_refit_estimate_is_the_sum_of_its_members() -> None:
    selection = _holdout(200_000, 100_000)
    linear = train.Trial("linear", {"penalty": 1e-3}, {}, 1.0)
    boost = train.Trial("xgboost", {"n_estimators": 300}, {}, 4.0)
    blend = train.Trial(
        "ensemble",
        {"members": {"linear": linear.params, "xgboost": boost.params}, "weights": {"linear": 0.3, "xgboost": 0.7}},
        {},
        0.0,
    )
    assert train._members(blend, [linear, boost, blend]) == [linear, boost]
    expected = train.REFIT_MARGIN * (1.0 * 2**1.0 + 4.0 * 2 ** train.REFIT_GROWTH["xgboost"])
    assert train.estimate_refit_seconds([linear, boost], selection, 200_000, 4) == pytest.approx(expected)


@pytest.mark.parametrize("problem", ["regression", "binary"])
def test_the_searchs_own_models_make_the_winner_a_refit_on_its_rows_would(tmp_path: Path, problem: str) -> None:
    # Given a holdout search that keeps each family's best fitted pipeline
    splits = _split(tmp_path, make_frame(problem, rows=400), problem)
    ptype = ProblemType(problem)
    train_ds = load_dataset(splits / "train" / "train.csv", target="y", problem_type=ptype)
    valid_ds = load_dataset(
        splits / "validation" / "validation.csv", target="y", problem_type=ptype, schema=train_ds.schema
    )
    schema = train_ds.schema
    y = np.concatenate([train.encode_target(schema, train_ds.target), train.encode_target(schema, valid_ds.target)])
    x = pd.concat([train_ds.features, valid_ds.features], ignore_index=True)
    settings = train.TrainingSettings(target="y", problem_type=ptype, max_trials=2, seed=3, cv_max_rows=0)
    selection = train.plan_selection(ptype, y, len(train_ds.target), settings, schema.classes)
    kept: dict = {}
    trials, skipped = train.fit_trials(
        schema, x, y, selection, train.plan_trials(settings), settings, 1, log=lambda _: None, kept=kept
    )
    assert skipped == 0 and len(kept) == 3  # one per family: the others were let go
    trials, _, _ = train.blend_and_select(schema, y, selection, trials, settings)
    rows = selection.folds[0][0]
    # When the blend (and each family's best) is assembled from them
    for candidate in [t for t in trials if t.index in kept or t.family == "ensemble"]:
        assembled = train.assemble(candidate, trials, kept, schema, y[rows])
        # Then it predicts what fitting that candidate on the search's rows predicts
        refit = build_candidate(schema, candidate.family, candidate.params, 3, 1, len(rows))
        refit.fit(x.iloc[rows], y[rows])
        if problem == "regression":
            np.testing.assert_allclose(assembled.predict(x), refit.predict(x), rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_allclose(assembled.predict_proba(x), refit.predict_proba(x), rtol=1e-12, atol=1e-12)
            assert np.array_equal(assembled.predict(x), refit.predict(x))
    # A member that was not kept (fitted on another instance) means no assembly
    blend = next(t for t in trials if t.family == "ensemble")
    assert train.assemble(blend, trials, {}, schema, y[rows]) is None


def test_extra_trees_grown_in_chunks_are_the_trees_of_one_fit_and_stop_at_a_deadline() -> None:
    import time

    from ml_code.candidates import TREE_CHUNK, StopCheck, build_candidate, fit_until

    data = make_frame("regression", rows=300)
    x, y = data.drop(columns=["y"]), data["y"].to_numpy()
    schema = load_dataset_schema(data)
    params = {"n_estimators": 2 * TREE_CHUNK + 7, "min_samples_leaf": 2, "max_features": 0.7}
    whole = build_candidate(schema, "extra_trees", params, 5, 1, len(y))
    whole.fit(x, y)
    chunked = build_candidate(schema, "extra_trees", params, 5, 1, len(y))
    in_time = StopCheck(time.monotonic() + 3600)
    fit_until(chunked, x, y, in_time)
    assert not in_time.stopped and len(chunked.named_steps["model"].estimators_) == params["n_estimators"]
    assert np.array_equal(whole.predict(x), chunked.predict(x))
    late = build_candidate(schema, "extra_trees", params, 5, 1, len(y))
    passed = StopCheck(time.monotonic() - 1)
    fit_until(late, x, y, passed)
    assert passed.stopped and len(late.named_steps["model"].estimators_) == TREE_CHUNK


def load_dataset_schema(frame: pd.DataFrame) -> DataSchema:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(Path(tmp) / "d.csv", frame)
        return load_dataset(path, target="y", problem_type=ProblemType.REGRESSION).schema


def test_metadata_records_seeds_and_the_datas_content_hash(tmp_path: Path) -> None:
    import hashlib

    splits = _split(tmp_path, make_frame("regression"), "regression")
    assert _train(tmp_path, splits, "regression", families="linear")[0] == 0
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["seeds"] == {"search": 7, "folds": 7, "models": 7}
    train_file = splits / "train" / "train.csv"
    expected = hashlib.sha256(b"train.csv\0" + train_file.read_bytes()).hexdigest()
    assert metadata["data"]["train_sha256"] == expected
    assert metadata["budget_exhausted"] is False


# --- failures are named, and SageMaker can show them ---------------------------------------------


def test_a_value_beyond_float32_is_rejected_by_line_and_written_as_the_failure_reason(tmp_path: Path) -> None:
    splits = _split(tmp_path, make_frame("regression"), "regression")
    text = (splits / "train" / "train.csv").read_text().splitlines()
    cells = text[3].split(",")
    cells[0] = "1e308"
    text[3] = ",".join(cells)
    (splits / "train" / "train.csv").write_text("\n".join(text) + "\n")
    code, ml_root = _train(tmp_path, splits, "regression")
    assert code == 1
    failure = (ml_root / "output" / "failure").read_text()
    assert "train.csv: column 'a' has a value that is infinite or beyond +/-3.4e+38 at line 4" in failure


def test_an_unexpected_failure_still_writes_the_failure_reason(tmp_path: Path, capsys) -> None:
    splits = _split(tmp_path, make_frame("regression"), "regression")
    (splits / "train" / "schema.json").write_text("{not json")
    code, ml_root = _train(tmp_path, splits, "regression")
    assert code == 1
    failure = (ml_root / "output" / "failure").read_text()
    assert failure.startswith("training failed unexpectedly: JSONDecodeError")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a,b,y\n1,2,3\n".encode("utf-16"), "the file is UTF-16 encoded; save it as UTF-8"),
        (b"a,b,y\n1,2,3\n1,\xe9,4\n", "line 3: byte 0xe9 is not UTF-8; save the file as UTF-8"),
        (b'a,b,y\n1,2,3\n"4,5,6\n7,8,9\n', "line 3: a quoted field is never closed"),
    ],
)
def test_local_run_names_encoding_and_quoting_mistakes_in_one_line(
    tmp_path: Path, capsys, content: bytes, message: str
) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(content)
    args = ["--data", str(data), "--target", "y", "--problem-type", "regression", "--output", str(tmp_path / "out")]
    assert local_run.main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: preprocess failed: ") and message in err


# --- the schema is the training split's ------------------------------------------------------------


def test_schema_categories_are_the_values_seen_in_training(tmp_path: Path) -> None:
    # A value on one row only; the first row position whose row the seeded split holds out.
    for position in range(200):
        frame = make_frame("regression", rows=200)
        frame.loc[position, "colour"] = "purple"
        splits = _split(tmp_path / str(position), frame, "regression")
        train_rows = pd.read_csv(splits / "train" / "train.csv")
        if "purple" not in set(train_rows["colour"]):
            break
    held_out = pd.concat([pd.read_csv(splits / s / f"{s}.csv") for s in ("validation", "test")])
    assert "purple" in set(held_out["colour"])
    schema = DataSchema.read(splits / "train" / "schema.json")
    (colour,) = [f for f in schema.features if f.name == "colour"]
    assert colour.categories == ("blue", "green", "red")  # not "purple": training never saw it
    for split in preprocess.SPLITS:
        assert DataSchema.read(splits / split / "schema.json") == schema


def test_above_the_limit_training_selects_on_the_validation_split(tmp_path: Path) -> None:
    splits = _split(tmp_path, make_frame("multiclass", rows=240), "multiclass")
    code, ml_root = _train(tmp_path, splits, "multiclass", cv_max_rows="0")
    assert code == 0
    board = json.loads((ml_root / "output" / "data" / "leaderboard.json").read_text())
    assert board["selection"]["method"] == "holdout"
    assert (board["selection"]["scored_rows"], board["selection"]["fit_rows"]) == (36, [168])
    assert all(len(t["fold_losses"]) == 1 for t in board["trials"] if t["family"] != "ensemble")
