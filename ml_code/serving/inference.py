"""Inference handlers, split the way SageMaker's inference toolkit splits them.

    model_fn(model_dir)              -> LoadedModel
    input_fn(body, content_type)     -> parsed rows          (RequestError 400/415 on bad input)
    predict_fn(rows, model)          -> predictions
    output_fn(predictions, accept)   -> (body, content type) (RequestError 406 on an unsupported Accept)

Requests carry feature columns in training order, no header and no target.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_code.artifact import ModelArtifact
from ml_code.schema import MISSING_TOKENS, DataSchema
from ml_code.serving.compiled import CompiledModel, Row

CSV = "text/csv"
JSON = "application/json"
SUPPORTED = (CSV, JSON)


class RequestError(Exception):
    """A client's mistake: an HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class LoadedModel:
    artifact: ModelArtifact
    compiled: CompiledModel

    @property
    def schema(self) -> DataSchema:
        return self.artifact.schema


def model_fn(model_dir: Path) -> LoadedModel:
    """Load the artifact and compile it for serving."""
    artifact = ModelArtifact.load(model_dir)
    return LoadedModel(artifact=artifact, compiled=CompiledModel(artifact.pipeline, artifact.schema))


def _cell(schema: DataSchema, row: int, column: int, value: Any) -> float | str | None:
    feature = schema.features[column]
    if value is None or (isinstance(value, str) and value.strip().lower() in MISSING_TOKENS):
        return math.nan if feature.kind == "numeric" else None
    if feature.kind == "numeric":
        if isinstance(value, bool):
            raise RequestError(400, f"row {row}, column {feature.name!r}: {value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RequestError(400, f"row {row}, column {feature.name!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise RequestError(400, f"row {row}, column {feature.name!r}: {value!r} is not a finite number")
        return number
    if isinstance(value, (dict, list)):
        raise RequestError(400, f"row {row}, column {feature.name!r}: expected a value, got {type(value).__name__}")
    return str(value).strip()


def _check_width(schema: DataSchema, row: int, values: list[Any]) -> None:
    expected = len(schema.features)
    if len(values) != expected:
        raise RequestError(
            400,
            f"row {row}: expected {expected} columns ({', '.join(schema.feature_names)}), found {len(values)}",
        )


def parse_csv(body: bytes, schema: DataSchema) -> list[Row]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "body is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RequestError(400, "body is empty: send one CSV row per line")
    rows: list[Row] = []
    try:
        for number, values in enumerate(csv.reader(lines), start=1):
            _check_width(schema, number, values)
            rows.append([_cell(schema, number, i, v) for i, v in enumerate(values)])
    except csv.Error as exc:
        raise RequestError(400, f"malformed CSV: {exc}") from None
    return rows


def parse_json(body: bytes, schema: DataSchema) -> list[Row]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from None
    if not isinstance(document, dict) or "instances" not in document:
        raise RequestError(400, 'JSON body must be an object with "instances": [[...], ...]')
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list of rows')
    rows: list[Row] = []
    for number, instance in enumerate(instances, start=1):
        if isinstance(instance, dict):
            unknown = sorted(set(instance) - set(schema.feature_names))
            if unknown:
                raise RequestError(400, f"row {number}: unknown columns {unknown}")
            values = [instance.get(name) for name in schema.feature_names]
        elif isinstance(instance, list):
            _check_width(schema, number, instance)
            values = instance
        else:
            raise RequestError(400, f"row {number}: expected a list of values or an object of column: value")
        rows.append([_cell(schema, number, i, v) for i, v in enumerate(values)])
    return rows


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def input_fn(body: bytes, content_type: str | None, model: LoadedModel) -> list[Row]:
    kind = media_type(content_type)
    if kind == CSV:
        return parse_csv(body, model.schema)
    if kind == JSON:
        return parse_json(body, model.schema)
    raise RequestError(415, f"unsupported Content-Type {content_type!r}; use {CSV} or {JSON}")


def predict_fn(rows: list[Row], model: LoadedModel) -> list[Any]:
    encoded = model.compiled.predict(rows)
    return model.artifact.decode(encoded)


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


def output_fn(predictions: list[Any], accept: str) -> bytes:
    if accept == JSON:
        return json.dumps({"predictions": predictions}).encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for value in predictions:
        writer.writerow([value])
    return buffer.getvalue().encode()
