"""Inference handlers, split the way SageMaker's inference toolkit splits them.

    model_fn(model_dir)                        -> LoadedModel
    input_fn(body, content_type, model)        -> Request (a Table of rows)  (RequestError 400/415 on bad input)
    predict_fn(request, model)                 -> Prediction
    output_fn(prediction, accept)              -> response body              (the type comes from choose_accept)

Requests carry feature columns in training order, no header and no target. Parsing works
column by column on whole arrays (numpy's string-to-float conversion, one dictionary lookup
per categorical cell), so a 6 MB batch-transform request costs no Python per row beyond the
CSV reader; the per-cell path only runs to name the row and column of a mistake.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_code.artifact import ModelArtifact
from ml_code.schema import MISSING_TOKENS, DataSchema, ProblemType
from ml_code.serving.compiled import CompiledModel, Table, ValueOutOfRange, first_non_finite

CSV = "text/csv"
JSON = "application/json"
SUPPORTED = (CSV, JSON)
# SageMaker passes the caller's CustomAttributes through in this header (InvokeEndpoint, batch transform).
CUSTOM_ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"
DEFAULT_DECISION_THRESHOLD = 0.5
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class RequestError(Exception):
    """A client's mistake (or the server being busy): an HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class LoadedModel:
    """The artifact, its compiled form, and the binary decision threshold from its metadata."""

    artifact: ModelArtifact
    compiled: CompiledModel
    decision_threshold: float = DEFAULT_DECISION_THRESHOLD

    @property
    def schema(self) -> DataSchema:
        return self.artifact.schema


@dataclass
class Request:
    """Parsed rows and what the client asked for."""

    table: Table
    probabilities: bool = False


@dataclass
class Prediction:
    """Labels (or values) per row; class probabilities when they were asked for."""

    labels: list[Any]
    classes: list[str] | None = None
    probabilities: np.ndarray | None = None


def decision_threshold(metadata: dict[str, Any]) -> float:
    """The binary classifier's threshold on P(positive class) from metadata.json, 0.5 when absent.

    Raises:
        ValueError: the value is not a number strictly between 0 and 1.
    """
    raw = metadata.get("decision_threshold", DEFAULT_DECISION_THRESHOLD)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < 1:
        raise ValueError(f"metadata.json: decision_threshold must be a number in (0, 1), got {raw!r}")
    return float(raw)


def model_fn(model_dir: Path) -> LoadedModel:
    """Load the artifact and compile it for serving.

    Raises:
        ArtifactError: a required file is missing.
        ValueError: metadata.json has an invalid decision threshold.
    """
    artifact = ModelArtifact.load(model_dir)
    threshold = decision_threshold(artifact.metadata)
    return LoadedModel(artifact, CompiledModel(artifact.pipeline, artifact.schema), threshold)


# --- parsing ---------------------------------------------------------------------------------------


def _cell(schema: DataSchema, row: int, column: int, value: Any) -> float | str | None:
    """One cell, typed per the schema; the slow path that names the row and column of a mistake."""
    feature = schema.features[column]
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_TOKENS):
        return math.nan if feature.kind == "numeric" else None
    if feature.kind == "numeric":
        if isinstance(value, (bool, dict, list)):
            raise RequestError(400, f"row {row}, column {feature.name!r}: {_short(value)} is not a number")
        try:
            number = float(value)
        except OverflowError:
            raise RequestError(
                400, f"row {row}, column {feature.name!r}: {_short(value)} is too large for a float"
            ) from None
        except (TypeError, ValueError):
            raise RequestError(400, f"row {row}, column {feature.name!r}: {_short(value)} is not a number") from None
        if not math.isfinite(number):
            raise RequestError(400, f"row {row}, column {feature.name!r}: {_short(value)} is not a finite number")
        return number
    if isinstance(value, (dict, list)):
        raise RequestError(400, f"row {row}, column {feature.name!r}: expected a value, got {type(value).__name__}")
    return str(value).strip()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"


def _width_error(schema: DataSchema, row: int, found: int) -> RequestError:
    expected = len(schema.features)
    return RequestError(
        400, f"row {row}: expected {expected} columns ({', '.join(schema.feature_names)}), found {found}"
    )


def _numeric_block(schema: DataSchema, positions: list[int], cells: np.ndarray, fast: Callable[[], np.ndarray]) -> Any:
    """Numeric columns as float64 (n, k): ``fast()`` converts them all at once; on any failure
    (or a non-finite value) they are re-read cell by cell, which names the row and column."""
    try:
        values = fast()
    except (ValueError, TypeError, OverflowError):
        values = None
    if values is not None and not np.isinf(values).any() and not np.isnan(values).any():
        return values
    out = np.empty((cells.shape[0], len(positions)))
    for j, position in enumerate(positions):
        column = cells[:, j].tolist()
        if values is not None and np.isfinite(values[:, j]).all():
            out[:, j] = values[:, j]
            continue
        # NaN stands for a missing value only when the client wrote a missing token (not "-nan").
        out[:, j] = [_cell(schema, r, position, v) for r, v in enumerate(column, start=1)]
    return out


def _categorical_column(schema: DataSchema, position: int, cells: list[Any]) -> list[str | None]:
    typed: dict[Any, str | None] = {}
    out = []
    for row, value in enumerate(cells, start=1):
        key = (type(value), value) if not isinstance(value, (dict, list)) else None
        if key is None:
            _cell(schema, row, position, value)  # raises: a list or object where a value belongs
        elif key not in typed:
            typed[key] = _cell(schema, row, position, value)  # type: ignore[assignment]
        out.append(typed[key])
    return out


def parse_csv(body: bytes, schema: DataSchema) -> Table:
    """Rows of a CSV body (no header), blank lines skipped.

    Raises:
        RequestError: 400 naming the row (1-based, blank lines not counted) and column at fault.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"body is not UTF-8 text (invalid byte at offset {exc.start})") from None
    if len(text) >= PANDAS_MIN_CHARS and not _NOT_PLAIN_CSV.search(text):
        grid = _plain_csv_grid(text, len(schema.features))
        if grid is not None:
            return _table(schema, grid, lambda block: block.astype(np.float64))
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RequestError(400, "body is empty: send one CSV row per line")
    try:
        rows = list(csv.reader(lines))
    except csv.Error as exc:
        raise RequestError(400, f"malformed CSV: {exc}") from None
    width = len(schema.features)
    widths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    wrong = np.flatnonzero(widths != width)
    if wrong.size:
        raise _width_error(schema, int(wrong[0]) + 1, int(widths[wrong[0]]))
    grid = np.array(rows, dtype=str).reshape(len(rows), width)
    return _table(schema, grid, lambda block: block.astype(np.float64))


# From this size on, plain CSV (no quotes, nothing unusual) is split by pandas' C tokenizer rather
# than the csv module; what it cannot split exactly as the csv module would goes the csv module's way.
PANDAS_MIN_CHARS = 64 * 1024
_NOT_PLAIN_CSV = re.compile('["\\x00\\x0b\\x0c\\x1c\\x1d\\x1e\\x85\\u2028\\u2029\\ufeff]|\\r(?!\\n)|^[^\\S\\n]+$', re.M)


def _plain_csv_grid(text: str, width: int) -> np.ndarray | None:
    """The cells of quote-free CSV as an object array of str, or None when the csv module must decide."""
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            header=None,
            dtype=str,
            na_filter=False,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=True,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None  # e.g. a row longer than the first: the csv module's path names it
    # pandas pads a row shorter than the first; with no quotes, each row's fields are its commas + 1,
    # and no row is longer (pandas refuses those), so this count catches every short row.
    if frame.shape[1] != width or text.count(",") != (width - 1) * frame.shape[0]:
        return None
    lines = text.splitlines()
    if frame.shape[0] != len(lines) - lines.count(""):  # the same rows as the csv module's path sees
        return None
    return frame.to_numpy(dtype=object)


def _table(schema: DataSchema, grid: np.ndarray, convert: Callable[[np.ndarray], np.ndarray]) -> Table:
    """A Table from a (rows, features) grid of raw cells; ``convert`` is the fast numeric conversion."""
    positions = [i for i, f in enumerate(schema.features) if f.kind == "numeric"]
    numeric = None
    columns: list[Any] = [None] * len(schema.features)
    if positions:
        block = grid[:, positions]
        numeric = _numeric_block(schema, positions, block, partial(convert, block))
        for j, position in enumerate(positions):
            columns[position] = numeric[:, j]
    for position, feature in enumerate(schema.features):
        if feature.kind != "numeric":
            columns[position] = _categorical_column(schema, position, grid[:, position].tolist())
    return Table(columns, grid.shape[0], numeric)


def _reject_constant(name: str) -> Any:
    raise RequestError(400, f"malformed JSON: {name} is not a JSON number (JSON has no NaN or Infinity)")


def parse_json_document(body: bytes) -> Any:
    """The decoded document, strict JSON only.

    Raises:
        RequestError: 400 for malformed or non-standard JSON, integers over Python's digit
            limit, and nesting deeper than the parser's recursion limit.
    """
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RequestError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply (a row is a flat list of values)") from None
    except ValueError as exc:  # int() refusing more than sys.get_int_max_str_digits() digits
        raise RequestError(400, f"malformed JSON: a number is too long ({str(exc).split(';')[0]})") from None


def parse_json(body: bytes, schema: DataSchema) -> Table:
    """Rows of ``{"instances": [[...], ...]}``, each a list in feature order or an object of column: value.

    Raises:
        RequestError: 400 naming the row and column at fault.
    """
    return _instances(parse_json_document(body), schema)


def _instances(document: Any, schema: DataSchema) -> Table:
    if not isinstance(document, dict) or "instances" not in document:
        raise RequestError(400, 'JSON body must be an object with "instances": [[...], ...]')
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list of rows')
    names = schema.feature_names
    known = set(names)
    width = len(names)
    rows: list[list[Any]] = []
    for number, instance in enumerate(instances, start=1):
        if type(instance) is list:
            if len(instance) != width:
                raise _width_error(schema, number, len(instance))
            rows.append(instance)
        elif isinstance(instance, dict):
            if instance.keys() != known:
                unknown = sorted(set(instance) - known)
                if unknown:
                    raise RequestError(400, f"row {number}: unknown columns {unknown}")
                missing = [name for name in names if name not in instance]
                raise RequestError(
                    400,
                    f"row {number}: missing columns {missing}; every feature is required "
                    "(send null for a missing value)",
                )
            rows.append([instance[name] for name in names])
        else:
            raise RequestError(400, f"row {number}: expected a list of values or an object of column: value")
    grid = np.empty((len(rows), width), dtype=object)
    try:
        grid[:] = rows
    except ValueError:  # cells holding lists confuse numpy's broadcasting: place them one by one
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                grid[r, c] = value
    return _table(schema, grid, _json_numbers)


def _json_numbers(block: np.ndarray) -> np.ndarray:
    # bool is an int subclass: only exact int and float cells take the fast path.
    if not set(map(type, block.ravel().tolist())) <= {float, int}:
        raise TypeError("not all numbers")
    return block.astype(np.float64)


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def custom_attributes(header: str | None) -> dict[str, str]:
    """``key=value`` pairs of SageMaker's CustomAttributes header (separated by ``;`` or ``,``)."""
    attributes: dict[str, str] = {}
    for part in (header or "").replace(",", ";").split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            attributes[key.strip().lower()] = value.strip()
    return attributes


def _flag(name: str, value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise RequestError(400, f"{where}: {name} must be true or false, got {_short(value)}")


def input_fn(body: bytes, content_type: str | None, model: LoadedModel, attributes: str | None = None) -> Request:
    """Parse a request body; ``attributes`` is the CustomAttributes header (``probabilities=true``).

    Raises:
        RequestError: 400 for bad rows or options, 415 for an unsupported Content-Type.
    """
    options = custom_attributes(attributes)
    probabilities = False
    if "probabilities" in options:
        probabilities = _flag("probabilities", options["probabilities"], CUSTOM_ATTRIBUTES_HEADER)
    kind = media_type(content_type)
    if kind == CSV:
        table = parse_csv(body, model.schema)
    elif kind == JSON:
        document = parse_json_document(body)
        table = _instances(document, model.schema)
        if isinstance(document, dict) and "probabilities" in document:
            probabilities = _flag("probabilities", document["probabilities"], "JSON body")
    else:
        raise RequestError(415, f"unsupported Content-Type {content_type!r}; use {CSV} or {JSON}")
    if probabilities and not model.artifact.is_classifier:
        raise RequestError(400, "probabilities=true is only for classifiers; this model is a regressor")
    return Request(table, probabilities)


def predict_fn(request: Request, model: LoadedModel, should_stop: Callable[[], bool] | None = None) -> Prediction:
    """Predict every row; binary classifiers use the artifact's decision threshold.

    Raises:
        RequestError: 400 when an input is too large for the model's arithmetic (naming its row
            and column) or gives a non-finite output (naming the row).
        Cancelled: ``should_stop`` answered True.
    """
    try:
        out = model.compiled.predict_proba(request.table, should_stop)
    except ValueOutOfRange as exc:
        raise RequestError(400, str(exc)) from None
    bad = first_non_finite(out)
    if bad is not None:
        raise RequestError(
            400, f"row {bad + 1}: the model's output is not a finite number (an input far outside the training range?)"
        )
    schema = model.schema
    if schema.problem_type is ProblemType.REGRESSION:
        return Prediction(labels=out.tolist())
    if schema.problem_type is ProblemType.BINARY and out.shape[1] == 2:
        encoded = (out[:, 1] >= model.decision_threshold).astype(np.intp)
    else:
        encoded = np.argmax(out, axis=1)
    labels = np.asarray(schema.classes, dtype=object)[encoded].tolist()
    if request.probabilities:
        return Prediction(labels, list(schema.classes), out)
    return Prediction(labels)


def choose_accept(accept: str | None, content_type: str | None) -> str:
    """The response type: the first supported type in Accept; the request's type for */* or none."""
    if not accept or not accept.strip():
        return media_type(content_type) if media_type(content_type) in SUPPORTED else JSON
    for part in accept.split(","):
        kind = media_type(part)
        if kind in SUPPORTED:
            return kind
        if kind in ("*/*", "text/*", "application/*"):
            fallback = media_type(content_type)
            if kind == "*/*" and fallback in SUPPORTED:
                return fallback
            if kind == "text/*":
                return CSV
            return JSON
    raise RequestError(406, f"unsupported Accept {accept!r}; use {CSV} or {JSON}")


def _csv_cells(values: list[Any]) -> list[str]:
    if values and isinstance(values[0], float):
        return list(map(repr, values))
    plain = [str(v) for v in values]
    if not any(("," in v or '"' in v or "\n" in v or "\r" in v) for v in set(plain)):
        return plain
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for value in plain:
        writer.writerow([value])
    return buffer.getvalue().splitlines()


def output_fn(prediction: Prediction | list[Any], accept: str) -> bytes:
    """The response body: JSON ``{"predictions": [...]}`` (strict JSON), or CSV, one row per line.

    With probabilities, JSON adds ``"classes"`` and ``"probabilities"`` (one list per row, in
    the order of ``classes``), and each CSV line is ``label,p_1,...,p_k``.
    """
    if not isinstance(prediction, Prediction):
        prediction = Prediction(list(prediction))
    if accept == JSON:
        document: dict[str, Any] = {"predictions": prediction.labels}
        if prediction.probabilities is not None:
            document["classes"] = prediction.classes
            document["probabilities"] = prediction.probabilities.tolist()
        return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
    lines = _csv_cells(prediction.labels)
    if prediction.probabilities is not None:
        columns = [list(map(repr, column)) for column in prediction.probabilities.T.tolist()]
        lines = [",".join(parts) for parts in zip(lines, *columns, strict=True)]
    return ("\n".join(lines) + "\n").encode()
