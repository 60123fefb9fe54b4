"""Dataset schema: declared or inferred, and validation that names the column and line of every problem.

Line numbers are the file's own: the header is line 1, the first data row line 2.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Cells read as missing. Everything else in a numeric column must parse as a number.
MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none", "?"})
# With no declared schema, a column is numeric when at least this share of its present
# values parse as numbers; the rest are then reported as text in a numeric column.
NUMERIC_INFERENCE_SHARE = 0.9
_MAX_REPORTED = 5
# The largest magnitude a numeric value may have. XGBoost and the compiled server work in
# float32, and StandardScaler squares values: beyond float32's range a value becomes inf there.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)


class ProblemType(StrEnum):
    """What the target is."""

    REGRESSION = "regression"
    BINARY = "binary"
    MULTICLASS = "multiclass"


class DataValidationError(ValueError):
    """The data breaks the schema; the message names the file, the column and the line."""


@dataclass(frozen=True)
class Feature:
    """One input column."""

    name: str
    kind: str  # "numeric" or "categorical"
    categories: tuple[str, ...] = ()  # categorical: values seen in training, sorted


@dataclass(frozen=True)
class DataSchema:
    """The columns a model is trained on, in order, and its target."""

    target: str
    problem_type: ProblemType
    features: tuple[Feature, ...]
    classes: tuple[str, ...] = field(default=())  # classification: labels, sorted

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_json(self) -> str:
        data = asdict(self)
        data["problem_type"] = self.problem_type.value
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DataSchema:
        data: dict[str, Any] = json.loads(text)
        return cls(
            target=data["target"],
            problem_type=ProblemType(data["problem_type"]),
            features=tuple(
                Feature(name=f["name"], kind=f["kind"], categories=tuple(f.get("categories", ())))
                for f in data["features"]
            ),
            classes=tuple(data.get("classes", ())),
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> DataSchema:
        return cls.from_json(path.read_text(encoding="utf-8"))


@dataclass
class Dataset:
    """Validated features and target, typed per the schema."""

    features: pd.DataFrame
    target: pd.Series
    schema: DataSchema


def read_csv_strict(path: Path) -> pd.DataFrame:
    """Read a CSV with a header, every cell as text, and reject structural problems.

    Raises:
        DataValidationError: missing or empty file, no data rows, blank or duplicate
            column names, or a row with the wrong number of fields.
    """
    if not path.is_file():
        raise DataValidationError(f"{path}: file not found")
    text = read_text_utf8(path)
    if not text.strip():
        raise DataValidationError(f"{path}: file is empty")
    reader = csv.reader(text.splitlines(), strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:  # an unterminated quote, a stray quote after a quoted field
        if "unexpected end of data" in str(exc):
            # Where the field opens: the line after the last complete row (rows span one line each
            # unless a quoted field held a line break, which the line count then undercounts).
            start = len(rows) + 1
            raise DataValidationError(f"{path}: line {start}: a quoted field is never closed") from None
        raise DataValidationError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    header = [name.strip() for name in rows[0]]
    for index, name in enumerate(header, start=1):
        if not name:
            raise DataValidationError(f"{path}: line 1: column {index} has no name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataValidationError(f"{path}: line 1: duplicate column names {duplicates}")
    body = [(line, row) for line, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if not body:
        raise DataValidationError(f"{path}: has a header but no data rows")
    for line, row in body:
        if len(row) != len(header):
            raise DataValidationError(f"{path}: line {line}: expected {len(header)} fields, found {len(row)}")
    frame = pd.DataFrame([[cell.strip() for cell in row] for _, row in body], columns=header, dtype=object)
    frame.index = pd.Index([line for line, _ in body], name="line")
    return frame


def read_text_utf8(path: Path) -> str:
    """The file's text, decoded as UTF-8 (a byte-order mark is dropped).

    Raises:
        DataValidationError: the bytes are not UTF-8 (UTF-16 is named when its byte-order mark is there).
    """
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DataValidationError(f"{path}: the file is UTF-16 encoded; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataValidationError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} is not UTF-8; save the file as UTF-8"
        ) from None


def _out_of_range(values: pd.Series, missing: pd.Series) -> pd.Series:
    """Present values that are not finite or too large to train on (see MAX_ABS_VALUE)."""
    with np.errstate(invalid="ignore"):
        return ~missing & ~(values.abs() <= MAX_ABS_VALUE)


def _missing(column: pd.Series) -> pd.Series:
    return column.map(lambda v: str(v).strip().lower() in MISSING_TOKENS)


def _to_numeric(column: pd.Series, missing: pd.Series) -> tuple[pd.Series, pd.Series]:
    values = pd.to_numeric(column.where(~missing), errors="coerce")
    bad = values.isna() & ~missing
    return values.astype(float), bad


def _lines(index: pd.Index) -> str:
    shown = [str(i) for i in index[:_MAX_REPORTED]]
    more = f" and {len(index) - _MAX_REPORTED} more" if len(index) > _MAX_REPORTED else ""
    return ", ".join(shown) + more


def load_dataset(
    path: Path,
    *,
    target: str,
    problem_type: ProblemType,
    schema: DataSchema | None = None,
) -> Dataset:
    """Read and validate a training dataset.

    Args:
        path: CSV with a header row.
        target: the target column.
        problem_type: regression, binary or multiclass.
        schema: a declared schema; without one, column types are inferred.

    Raises:
        DataValidationError: with the file, column and line(s) at fault.
    """
    frame = read_csv_strict(path)
    if target not in frame.columns:
        raise DataValidationError(f"{path}: target column {target!r} not found; columns are {list(frame.columns)}")
    if schema is not None:
        expected = set(schema.feature_names) | {schema.target}
        missing_cols = [c for c in [*schema.feature_names, schema.target] if c not in frame.columns]
        unknown_cols = [c for c in frame.columns if c not in expected]
        if missing_cols:
            raise DataValidationError(f"{path}: missing columns {missing_cols} that the schema declares")
        if unknown_cols:
            raise DataValidationError(f"{path}: unknown columns {unknown_cols} that the schema does not declare")
        declared = {f.name: f.kind for f in schema.features}
    else:
        declared = {}

    features: dict[str, pd.Series] = {}
    feature_specs: list[Feature] = []
    names = schema.feature_names if schema else [c for c in frame.columns if c != target]
    if not names:
        raise DataValidationError(f"{path}: no feature columns besides the target {target!r}")
    for name in names:
        column = frame[name]
        missing = _missing(column)
        if missing.all():
            raise DataValidationError(f"{path}: column {name!r} has no values (every row is empty or null)")
        numbers, bad = _to_numeric(column, missing)
        present = int((~missing).sum())
        kind = declared.get(name)
        if kind is None:
            kind = "numeric" if (present - int(bad.sum())) / present >= NUMERIC_INFERENCE_SHARE else "categorical"
        if kind == "numeric":
            if bad.any():
                first = bad[bad].index
                raise DataValidationError(
                    f"{path}: column {name!r} is numeric but has text at line {_lines(first)} "
                    f"(first: {column[first[0]]!r})"
                )
            huge = _out_of_range(numbers, missing)
            if huge.any():
                first = huge[huge].index
                raise DataValidationError(
                    f"{path}: column {name!r} has a value that is infinite or beyond +/-{MAX_ABS_VALUE:.3g} at line "
                    f"{_lines(first)} (first: {column[first[0]]!r})"
                )
            features[name] = numbers
            feature_specs.append(Feature(name=name, kind="numeric"))
        else:
            values = column.where(~missing, None).astype(object)
            features[name] = values
            feature_specs.append(
                Feature(name=name, kind="categorical", categories=tuple(sorted({str(v) for v in values.dropna()})))
            )

    y_raw = frame[target]
    y_missing = _missing(y_raw)
    if y_missing.all():
        raise DataValidationError(f"{path}: target column {target!r} has no values")
    if y_missing.any():
        raise DataValidationError(
            f"{path}: target column {target!r} is empty at line {_lines(y_missing[y_missing].index)}"
        )
    classes: tuple[str, ...] = ()
    if problem_type is ProblemType.REGRESSION:
        y_values, y_bad = _to_numeric(y_raw, y_missing)
        if y_bad.any():
            first = y_bad[y_bad].index
            raise DataValidationError(
                f"{path}: target column {target!r} must be numeric for regression but has text at line "
                f"{_lines(first)} (first: {y_raw[first[0]]!r})"
            )
        huge = _out_of_range(y_values, y_missing)
        if huge.any():
            first = huge[huge].index
            raise DataValidationError(
                f"{path}: target column {target!r} has a value that is infinite or beyond +/-{MAX_ABS_VALUE:.3g} "
                f"at line {_lines(first)} (first: {y_raw[first[0]]!r})"
            )
        if y_values.nunique() < 2:
            raise DataValidationError(f"{path}: target column {target!r} is constant; there is nothing to learn")
        y: pd.Series = y_values
    else:
        y = y_raw.astype(str)
        labels = sorted(y.unique())
        if len(labels) < 2:
            raise DataValidationError(
                f"{path}: target column {target!r} has a single class {labels[0]!r}; classification needs two or more"
            )
        if problem_type is ProblemType.BINARY and len(labels) != 2:
            raise DataValidationError(
                f"{path}: target column {target!r} has {len(labels)} classes; binary needs exactly 2 "
                f"(use --problem-type multiclass)"
            )
        if problem_type is ProblemType.MULTICLASS and len(labels) < 3:
            raise DataValidationError(f"{path}: target column {target!r} has 2 classes; use --problem-type binary")
        classes = tuple(labels)

    result_schema = DataSchema(target=target, problem_type=problem_type, features=tuple(feature_specs), classes=classes)
    return Dataset(features=pd.DataFrame(features, index=frame.index), target=y, schema=result_schema)
