"""Preprocess step: validate the raw data and split it reproducibly into train, validation and test.

SageMaker runs it as a Processing job:
    python -m ml_code.preprocess --target rings --problem-type regression
    input   /opt/ml/processing/input/data/*.csv (one or more files with the same header)
    output  /opt/ml/processing/output/{train,validation,test}/<split>.csv, each with schema.json and
            lineage.json beside it (the identity of the input files it read: ml_code.lineage)

The transform itself (impute, encode, scale) is fitted by the training step inside the
model pipeline, so that serving applies exactly what training learned.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from ml_code.environment import processing_root
from ml_code.lineage import LINEAGE_FILE, describe_inputs
from ml_code.schema import (
    DataSchema,
    DataValidationError,
    ProblemType,
    load_dataset,
    read_csv_strict,
    read_text_utf8,
)

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitResult:
    schema: DataSchema
    rows: dict[str, int]


def combine_inputs(input_dir: Path, work_file: Path | None = None) -> Path:
    """One CSV from every CSV in ``input_dir``: a Processing input, or a split written by Spark as parts.

    A single file is returned as it is (its own checks report it if it is empty). Among several,
    parts without a data row (Spark writes one per empty partition) add nothing and are passed
    over; every other part is validated and must share the first one's header. The combined
    file goes to ``work_file``, or to a new temporary directory.

    Raises:
        DataValidationError: no CSV, no data in any part, or parts whose headers differ.
    """
    files = sorted(input_dir.glob("*.csv")) if input_dir.is_dir() else []
    if not files:
        raise DataValidationError(f"{input_dir}: no CSV files found")
    if len(files) == 1:
        return files[0]
    parts = [(f, read_csv_strict(f)) for f in files if _has_data_row(f)]
    if not parts:
        raise DataValidationError(f"{input_dir}: none of its {len(files)} CSV files has a data row")
    first_file, first = parts[0]
    for f, frame in parts[1:]:
        if list(frame.columns) != list(first.columns):
            raise DataValidationError(f"{f}: header {list(frame.columns)} differs from {first_file.name}'s")
    if work_file is None:
        work_file = Path(tempfile.mkdtemp(prefix="mlops-")) / f"{input_dir.name}.csv"
    work_file.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([frame for _, frame in parts]).to_csv(work_file, index=False)
    return work_file


def _has_data_row(path: Path) -> bool:
    lines = read_text_utf8(path).splitlines()
    return any(line.strip() for line in lines[1:])  # after the header


def split_dataset(
    data_file: Path,
    output_dir: Path,
    *,
    target: str,
    problem_type: ProblemType,
    schema: DataSchema | None = None,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 42,
) -> SplitResult:
    """Validate ``data_file`` and write the three splits with the inferred (or declared) schema.

    Raises:
        DataValidationError: bad data, or too few rows to split.
    """
    if not 0 < validation_fraction < 0.5 or not 0 < test_fraction < 0.5:
        raise DataValidationError("validation and test fractions must each be between 0 and 0.5")
    dataset = load_dataset(data_file, target=target, problem_type=problem_type, schema=schema)
    frame = dataset.features.copy()
    frame[target] = dataset.target
    classification = problem_type is not ProblemType.REGRESSION
    holdout = validation_fraction + test_fraction
    minimum = max(10, 2 * len(dataset.schema.classes))
    if len(frame) < minimum:
        raise DataValidationError(f"{data_file}: {len(frame)} rows are too few to split (need at least {minimum})")
    try:
        train, rest = train_test_split(
            frame, test_size=holdout, random_state=seed, stratify=frame[target] if classification else None
        )
        validation, test = train_test_split(
            rest,
            test_size=test_fraction / holdout,
            random_state=seed,
            stratify=rest[target] if classification else None,
        )
    except ValueError as exc:  # a class too rare to stratify
        raise DataValidationError(f"{data_file}: cannot split {target!r} reproducibly: {exc}") from None
    rows = {}
    for name, part in zip(SPLITS, (train, validation, test), strict=True):
        out = output_dir / name
        out.mkdir(parents=True, exist_ok=True)
        part.sort_index().to_csv(out / f"{name}.csv", index=False)
        rows[name] = len(part)
    # The schema is the training split's: categories are the values seen in training (the whole
    # file was only validated). A declared schema stays as declared.
    train_schema = load_dataset(
        output_dir / "train" / "train.csv", target=target, problem_type=problem_type, schema=schema
    ).schema
    for name in SPLITS:
        if name != "train":  # the held-out splits must fit the training schema (same kinds)
            load_dataset(
                output_dir / name / f"{name}.csv", target=target, problem_type=problem_type, schema=train_schema
            )
        train_schema.write(output_dir / name / "schema.json")
    return SplitResult(schema=train_schema, rows=rows)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--problem-type", required=True, choices=[p.value for p in ProblemType])
    parser.add_argument("--schema", type=Path, help="declared schema.json (default: inferred)")
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    root = processing_root(env)
    try:
        # Hashed before reading: what the step read is what the identity names.
        read = sorted((root / "input" / "data").glob("*.csv")) if (root / "input" / "data").is_dir() else []
        lineage = {
            **describe_inputs(read),
            "seed": args.seed,
            "validation_fraction": args.validation_fraction,
            "test_fraction": args.test_fraction,
        }
        data_file = combine_inputs(root / "input" / "data", root / "work" / "combined.csv")
        result = split_dataset(
            data_file,
            root / "output",
            target=args.target,
            problem_type=ProblemType(args.problem_type),
            schema=DataSchema.read(args.schema) if args.schema else None,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
    except DataValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in SPLITS:
        (root / "output" / name / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
    print(f"split {sum(result.rows.values())} rows: {result.rows}; input {lineage['input_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
