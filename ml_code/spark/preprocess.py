"""Preprocess step on Spark: validate and split large data, for the pipeline's Spark path.

SageMaker runs it with PySparkProcessor (its Spark 3.5 container) as the ``submit_app``:

    preprocess.py --input s3://bucket/data/ --output s3://bucket/prefix --target rings --problem-type regression

It reads every CSV under ``--input`` (a header in each), checks what ``ml_code.preprocess``
checks, and writes ``--output/{train,validation,test}/`` as CSV parts with a header, each
with ``schema.json`` beside them, in the format of ``ml_code.schema.DataSchema``. The split is
a seeded random split (not stratified). As in the pandas step, the whole input is validated but
the schema is the training split's (kinds, categories and classes seen in training), and the
validation and test splits must fit it. ``lineage.json`` beside each split records the identity of
the files Spark read, computed as ``ml_code.lineage`` defines it (SHA-256 over the sorted lines
``<file name>\0<SHA-256 of its bytes>\n``). Only pyspark and the standard library are used, and nothing
newer than Python 3.9: the Spark container carries neither this project's packages nor a
recent Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

MISSING_TOKENS = ["", "na", "nan", "null", "none", "?"]
NUMERIC_INFERENCE_SHARE = 0.9
MAX_CATEGORIES = 10_000
SPLITS = ("train", "validation", "test")


class DataError(ValueError):
    """The data breaks the contract; the message names the column and the problem."""


def _missing(column: str) -> Any:
    return F.col(column).isNull() | F.lower(F.trim(F.col(column))).isin(MISSING_TOKENS)


def infer_and_validate(df: DataFrame, *, source: str, target: str, problem_type: str) -> tuple[DataFrame, dict]:
    """Type the columns, check the data, and describe it as a DataSchema document.

    Raises:
        DataError: with the source, the column and the problem.
    """
    columns = df.columns
    if target not in columns:
        raise DataError(f"{source}: target column {target!r} not found; columns are {columns}")
    features = [c for c in columns if c != target]
    if not features:
        raise DataError(f"{source}: no feature columns besides the target {target!r}")
    # One pass: per column, how many values are present and how many of those parse as numbers.
    stats = df.agg(
        *[
            agg
            for c in columns
            for agg in (
                F.sum(F.when(~_missing(c), 1).otherwise(0)).alias(f"{c}__present"),
                F.sum(F.when(~_missing(c) & F.trim(F.col(c)).cast("double").isNotNull(), 1).otherwise(0)).alias(
                    f"{c}__numeric"
                ),
            )
        ]
    ).first()
    assert stats is not None
    if int(stats[f"{columns[0]}__present"] or 0) == 0 and df.limit(1).count() == 0:
        raise DataError(f"{source}: no data rows")
    typed = df
    spec: list[dict[str, Any]] = []
    for c in features:
        present, numeric = int(stats[f"{c}__present"] or 0), int(stats[f"{c}__numeric"] or 0)
        if present == 0:
            raise DataError(f"{source}: column {c!r} has no values (every row is empty or null)")
        if numeric / present >= NUMERIC_INFERENCE_SHARE:
            if numeric < present:
                bad = df.where(~_missing(c) & F.trim(F.col(c)).cast("double").isNull()).select(c).first()
                raise DataError(
                    f"{source}: column {c!r} is numeric but has {present - numeric} text values "
                    f"(first: {bad[0] if bad else '?'!r})"
                )
            typed = typed.withColumn(c, F.when(_missing(c), None).otherwise(F.trim(F.col(c)).cast("double")))
            spec.append({"name": c, "kind": "numeric", "categories": []})
        else:
            typed = typed.withColumn(c, F.when(_missing(c), None).otherwise(F.trim(F.col(c))))
            values = [
                r[0] for r in typed.select(c).where(F.col(c).isNotNull()).distinct().limit(MAX_CATEGORIES).collect()
            ]
            spec.append({"name": c, "kind": "categorical", "categories": sorted(str(v) for v in values)})
    if int(stats[f"{target}__present"] or 0) < df.count():
        raise DataError(f"{source}: target column {target!r} is empty in some rows")
    classes: list[str] = []
    if problem_type == "regression":
        if int(stats[f"{target}__numeric"] or 0) < int(stats[f"{target}__present"] or 0):
            raise DataError(f"{source}: target column {target!r} must be numeric for regression but has text")
        typed = typed.withColumn(target, F.trim(F.col(target)).cast("double"))
        if typed.select(target).distinct().limit(2).count() < 2:
            raise DataError(f"{source}: target column {target!r} is constant; there is nothing to learn")
    else:
        typed = typed.withColumn(target, F.trim(F.col(target)))
        classes = sorted(r[0] for r in typed.select(target).distinct().limit(MAX_CATEGORIES).collect())
        if len(classes) < 2:
            raise DataError(
                f"{source}: target column {target!r} has a single class {classes[0]!r}; "
                "classification needs two or more"
            )
        if problem_type == "binary" and len(classes) != 2:
            raise DataError(f"{source}: target column {target!r} has {len(classes)} classes; binary needs exactly 2")
        if problem_type == "multiclass" and len(classes) < 3:
            raise DataError(f"{source}: target column {target!r} has 2 classes; use --problem-type binary")
    schema = {"target": target, "problem_type": problem_type, "features": spec, "classes": classes}
    return typed.select(*features, target), schema


def split(df: DataFrame, *, validation_fraction: float, test_fraction: float, seed: int) -> dict[str, DataFrame]:
    """A seeded random split into train, validation and test."""
    train_fraction = 1.0 - validation_fraction - test_fraction
    parts = df.randomSplit([train_fraction, validation_fraction, test_fraction], seed=seed)
    # zip's strict= is Python 3.10+, and the Spark image's Python may be older.
    return dict(zip(SPLITS, parts))  # noqa: B905


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write one small file through Hadoop's file system API (local paths and s3:// alike)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "no JVM behind the Spark context"
    path = jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def check_fits(df: DataFrame, schema: dict, *, source: str) -> None:
    """A held-out split must fit the training split's schema: no text where training saw numbers, no new class.

    Raises:
        DataError: naming the split, the column and the problem.
    """
    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    if numeric:
        text = df.agg(
            *[
                F.sum(F.when(~_missing(c) & F.trim(F.col(c)).cast("double").isNull(), 1).otherwise(0)).alias(c)
                for c in numeric
            ]
        ).first()
        assert text is not None
        for c in numeric:
            if int(text[c] or 0):
                raise DataError(
                    f"{source}: column {c!r} is numeric in the training split but has {int(text[c])} text values here"
                )
    if schema["classes"]:
        target = schema["target"]
        unseen = [
            r[0] for r in df.select(target).distinct().where(~F.col(target).isin(schema["classes"])).limit(10).collect()
        ]
        if unseen:
            raise DataError(
                f"{source}: target classes {sorted(unseen)} do not occur in the training split "
                f"(it has {schema['classes']}); the split is not stratified: add rows of those classes"
            )


def input_lineage(spark: SparkSession, df: DataFrame) -> dict:
    """The identity of the files ``df`` reads, as ``ml_code.lineage.describe_inputs`` computes it.

    Each file is hashed by an executor (Spark's binaryFile source reads a file whole, so one
    file must stay under 2 GB); only the names, sizes and hashes reach the driver.
    """
    files = df.inputFiles()
    rows = (
        spark.read.format("binaryFile")
        .load(files)
        .select("path", "length", F.sha2(F.col("content"), 256).alias("sha256"))
        .collect()
    )
    described = sorted(
        (
            {"name": r["path"].rstrip("/").rsplit("/", 1)[-1], "bytes": int(r["length"]), "sha256": r["sha256"]}
            for r in rows
        ),
        key=lambda d: (d["name"], d["sha256"]),
    )
    digest = hashlib.sha256()
    for d in described:
        digest.update(f"{d['name']}\0{d['sha256']}\n".encode())
    return {"input_sha256": digest.hexdigest(), "input_files": described}


def run(spark: SparkSession, args: argparse.Namespace) -> dict[str, int]:
    df = spark.read.option("header", True).option("mode", "FAILFAST").csv(args.input)
    lineage = {
        **input_lineage(spark, df),
        "seed": args.seed,
        "validation_fraction": args.validation_fraction,
        "test_fraction": args.test_fraction,
    }
    # The whole input is validated (its errors name the input); the schema is then the training split's.
    typed, _ = infer_and_validate(df, source=args.input, target=args.target, problem_type=args.problem_type)
    parts = split(typed, validation_fraction=args.validation_fraction, test_fraction=args.test_fraction, seed=args.seed)
    _, schema = infer_and_validate(
        parts["train"], source=f"{args.input} (training split)", target=args.target, problem_type=args.problem_type
    )
    for name in SPLITS[1:]:
        check_fits(parts[name], schema, source=f"{args.input} ({name} split)")
    rows = {}
    document = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    for name, part in parts.items():
        out = f"{args.output.rstrip('/')}/{name}"
        part.write.mode("overwrite").option("header", True).csv(out)
        write_text(spark, f"{out}/schema.json", document)
        write_text(spark, f"{out}/lineage.json", json.dumps(lineage, indent=2, sort_keys=True) + "\n")
        rows[name] = part.count()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate and split large data with Spark.")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--problem-type", required=True, choices=["regression", "binary", "multiclass"])
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    spark = SparkSession.builder.appName("mlops-preprocess").getOrCreate()
    try:
        rows = run(spark, args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print(f"split {sum(rows.values())} rows: {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
