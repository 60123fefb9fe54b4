"""The data to check, read into per-column profiles: captured records, or a plain CSV of features.

Captured records (JSONL, one file or a tree of ``<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``) become
rows as Model Monitor builds them: the output column(s) first, then the request's features, matched
to the baseline by position (columns past the baseline's are named ``_c<i>``, as Spark names them).
A plain CSV has a header and is matched to the baseline by column name.

Every row is read; nothing is sampled. Numeric columns keep all their present values (the drift
distance is computed exactly from them), string columns a count per value. Rows go through
pandas' C parser in chunks, typed as the baseline says, so a million rows take about a second.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd

from ml_code.monitor.capture import decode_payload
from ml_code.monitor.errors import MonitorInputError
from ml_code.monitor.reference import Reference, ReferenceColumn
from ml_code.schema import MISSING_TOKENS

CHUNK_ROWS = 250_000
# pandas matches missing-value tokens case-sensitively: list the spellings people write.
NA_VALUES = sorted({v for t in MISSING_TOKENS for v in (t, t.upper(), t.capitalize())} | {"NaN"})


@dataclass
class NumericProfile:
    """A numeric column of the batch: all present values, and what did not fit the baseline's type."""

    chunks: list[np.ndarray] = field(default_factory=list)
    missing: int = 0
    not_numeric: int = 0  # present, but not a finite number
    not_integral: int = 0  # a number with a fraction where the baseline is Integral
    _sorted: np.ndarray | None = None

    @property
    def present(self) -> int:
        """Values that are numbers (the ones the distribution is made of)."""
        return int(self._sorted.size) if self._sorted is not None else sum(c.size for c in self.chunks)

    @property
    def non_null(self) -> int:
        return self.present + self.not_numeric

    def merge(self, other: NumericProfile) -> None:
        self.chunks += other.chunks
        self.missing += other.missing
        self.not_numeric += other.not_numeric
        self.not_integral += other.not_integral

    def sorted_values(self) -> np.ndarray:
        """All numbers present, sorted (computed once; the chunks are released)."""
        if self._sorted is None:
            values = np.concatenate(self.chunks) if self.chunks else np.empty(0)
            self.chunks = []
            values.sort()
            self._sorted = values
        return self._sorted


@dataclass
class StringProfile:
    """A string column of the batch: the count of each present value."""

    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0

    @property
    def present(self) -> int:
        return sum(self.counts.values())

    @property
    def non_null(self) -> int:
        return self.present

    def add_counts(self, counts: pd.Series) -> None:
        for value, count in counts.items():
            if count:
                key = str(value)
                self.counts[key] = self.counts.get(key, 0) + int(count)

    def merge(self, other: StringProfile) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.missing += other.missing


Profile = NumericProfile | StringProfile


@dataclass
class CapturedPrediction:
    """The model's output for one captured record, keyed as Model Monitor joins ground truth."""

    key: str  # inferenceId when the caller gave one, else eventId
    values: list[str]  # the first output column of each row of the record
    where: str  # file: line N


@dataclass
class Batch:
    """The batch, profiled per baseline column (None where the data has no such column)."""

    profiles: list[Profile | None]
    rows: int
    source: str
    width: int  # columns in the data
    extra_columns: list[str] = field(default_factory=list)
    predictions: list[CapturedPrediction] = field(default_factory=list)
    records: int = 0  # capture records read (0 for a plain CSV)


def _new_profiles(reference: Reference) -> list[Profile]:
    return [NumericProfile() if c.numeric else StringProfile() for c in reference.columns]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return bool(np.isnan(value))
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _add_numeric(profile: NumericProfile, column: pd.Series, ref: ReferenceColumn) -> None:
    if column.dtype.kind == "f":
        values = column.to_numpy()
        missing = np.isnan(values)
        bad = np.isinf(values)
    else:  # text, or values from JSON: parse, and count what is not a number
        raw = column.to_numpy(dtype=object)
        missing = np.fromiter((_is_missing(v) for v in raw), dtype=bool, count=raw.size)
        # JSON true/false are not numbers, though Python would read them as 1 and 0.
        kept = [None if (m or isinstance(v, bool)) else v for v, m in zip(raw, missing, strict=True)]
        values = pd.to_numeric(pd.Series(kept, dtype=object), errors="coerce").to_numpy(dtype=float)
        bad = (np.isnan(values) & ~missing) | np.isinf(values)
    present = values[~(missing | bad)]
    profile.missing += int(missing.sum())
    profile.not_numeric += int(bad.sum())
    if ref.inferred_type == "Integral":
        profile.not_integral += int(np.count_nonzero(present != np.floor(present)))
    profile.chunks.append(np.array(present, dtype=float))


def _add_string(profile: StringProfile, column: pd.Series) -> None:
    if isinstance(column.dtype, pd.StringDtype):  # from the CSV parser: missing tokens are already NA
        profile.missing += int(column.isna().sum())
        profile.add_counts(column.value_counts(sort=False, dropna=True))
        return
    raw = column.to_numpy(dtype=object)
    missing = np.fromiter((_is_missing(v) for v in raw), dtype=bool, count=raw.size)
    profile.missing += int(missing.sum())
    present = pd.Series([_as_text(v) for v in raw[~missing]], dtype=object)
    profile.add_counts(present.value_counts(sort=False))


def _profile_columns(frame: pd.DataFrame, positions: list[int], reference: Reference, profiles: list[Profile]) -> None:
    for index, position in enumerate(positions):
        profile = profiles[position]
        column = frame.iloc[:, index]
        if isinstance(profile, NumericProfile):
            _add_numeric(profile, column, reference.columns[position])
        else:
            _add_string(profile, column)


def _profile_csv(
    opener: Callable[[], AbstractContextManager[IO[str]]],
    where: str,
    reference: Reference,
    *,
    header: bool,
    names: list[str],
    selected: list[str],
    positions: list[int],
) -> tuple[list[Profile], int]:
    """Profile the ``selected`` columns of a CSV (baseline ``positions``); returns the profiles and row count.

    Numeric columns are parsed as float64 by the C parser. If one holds text, the source is read
    again with numeric columns as text, so that the text is counted (as data-type mismatches)
    rather than failing the run.
    """
    for numeric_as_float in (True, False):
        profiles = _new_profiles(reference)
        rows = 0
        # Columns the baseline does not have are parsed too: pandas checks a row's field count only
        # when it parses every column. Strings stay text: a "category" dtype would turn "007" into 7.
        dtypes: dict[str, Any] = dict.fromkeys(names, str)
        for name, position in zip(selected, positions, strict=True):
            numeric = reference.columns[position].numeric
            dtypes[name] = ("float64" if numeric_as_float else object) if numeric else str
        try:
            with opener() as handle:
                reader = pd.read_csv(
                    handle,
                    header=0 if header else None,
                    names=names,
                    dtype=dtypes,
                    na_values=NA_VALUES,
                    keep_default_na=False,
                    skipinitialspace=True,
                    skip_blank_lines=True,
                    chunksize=CHUNK_ROWS,
                    engine="c",
                )
                for chunk in reader:
                    rows += len(chunk)
                    _profile_columns(chunk[selected], positions, reference, profiles)
            return profiles, rows
        except pd.errors.ParserError as exc:
            message = str(exc).strip().removeprefix("Error tokenizing data. C error: ")
            raise MonitorInputError(f"{where}: {message}") from None
        except pd.errors.EmptyDataError:
            return profiles, 0
        except UnicodeDecodeError:
            raise MonitorInputError(f"{where}: not UTF-8 text") from None
        except ValueError:
            if not numeric_as_float:
                raise
    raise AssertionError("unreachable")


def read_plain_csv(path: Path, reference: Reference) -> Batch:
    """A CSV of features with a header, matched to the baseline by column name.

    Raises:
        MonitorInputError: unreadable file, no header, blank or duplicate names, a row with too many fields.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header_row = next(csv.reader(handle), None)
    except UnicodeDecodeError:
        raise MonitorInputError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise MonitorInputError(f"{path}: cannot read: {exc.strerror}") from None
    if not header_row or not any(cell.strip() for cell in header_row):
        raise MonitorInputError(f"{path}: file is empty (a CSV of features needs a header row)")
    header = [cell.strip() for cell in header_row]
    for index, name in enumerate(header, start=1):
        if not name:
            raise MonitorInputError(f"{path}: line 1: column {index} has no name")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise MonitorInputError(f"{path}: line 1: duplicate column names {duplicates}")
    index_of = {name: i for i, name in enumerate(reference.names)}
    selected = [n for n in header if n in index_of]
    positions = [index_of[n] for n in selected]
    if selected:
        profiles, rows = _profile_csv(
            lambda: path.open(encoding="utf-8-sig", newline=""),
            str(path),
            reference,
            header=True,
            names=header,
            selected=selected,
            positions=positions,
        )
    else:  # nothing to profile, but the rows still count
        profiles = _new_profiles(reference)
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = sum(1 for row in csv.reader(handle) if any(cell.strip() for cell in row)) - 1
    kept = set(positions)
    return Batch(
        profiles=[p if i in kept else None for i, p in enumerate(profiles)],
        rows=rows,
        source=str(path),
        width=len(header),
        extra_columns=[n for n in header if n not in index_of],
    )


def capture_files(path: Path) -> list[Path]:
    """The capture files at ``path``: the file itself, or every ``*.jsonl`` below it, in path order.

    Raises:
        MonitorInputError: nothing there.
    """
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        if not files:
            raise MonitorInputError(f"{path}: no capture files (*.jsonl) below this directory")
        return files
    raise MonitorInputError(f"{path}: no such file or directory")


def _csv_rows(text: str) -> list[tuple[str, int]]:
    """The rows of a CSV body without a header: each as one CSV line, with its field count."""
    if '"' not in text:
        return [(line, line.count(",") + 1) for line in text.splitlines() if line.strip()]
    rows = []
    for fields in csv.reader(io.StringIO(text)):
        if any(f.strip() for f in fields):
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(fields)
            rows.append((buffer.getvalue(), len(fields)))
    return rows


def _first_field(line: str) -> str:
    if '"' not in line:
        return line.split(",", 1)[0].strip()
    return next(csv.reader([line]))[0].strip()


def _json_document(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MonitorInputError(f"{where}: body is not valid JSON: {exc}") from None


def _json_input_rows(document: Any, input_names: list[str], where: str, extra: set[str]) -> list[list[Any]]:
    """The rows of a JSON request: ``{"instances": [...]}``, a list of rows, one row, or one object."""
    if isinstance(document, dict) and "instances" in document:
        rows = document["instances"]
        if not isinstance(rows, list):
            raise MonitorInputError(f'{where}: "instances" must be a list of rows')
    elif isinstance(document, list):
        rows = document if document and all(isinstance(r, (list, dict)) for r in document) else [document]
    elif isinstance(document, dict):
        rows = [document]
    else:
        raise MonitorInputError(f"{where}: a JSON request must be an object or a list, got {type(document).__name__}")
    out: list[list[Any]] = []
    for number, row in enumerate(rows, start=1):
        if isinstance(row, dict):
            extra.update(k for k in row if k not in input_names)
            out.append([row.get(name) for name in input_names])
        elif isinstance(row, list):
            out.append(row)
        else:
            raise MonitorInputError(f"{where}: row {number} must be a list of values or an object")
    return out


def _json_output_rows(document: Any, where: str) -> list[list[Any]]:
    """The rows of a JSON response: ``{"predictions": [...]}``, a list, or one value."""
    if isinstance(document, dict):
        if "predictions" not in document:
            raise MonitorInputError(f'{where}: a JSON response must have "predictions"')
        document = document["predictions"]
    values = document if isinstance(document, list) else [document]
    rows: list[list[Any]] = []
    for value in values:
        if isinstance(value, dict):
            rows.append(list(value.values()))
        elif isinstance(value, list):
            rows.append(value)
        else:
            rows.append([value])
    return rows


class _CaptureRows:
    """Rows gathered from capture records: CSV lines where both sides are CSV, Python lists otherwise."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.lines: list[str] = []
        self.line_width = 0
        self.values: list[list[Any]] = []
        self.values_width = 0
        self.rows = 0
        self.width = 0
        self.profiles = _new_profiles(reference)
        self.seen = [False] * len(reference.columns)

    def add_line(self, line: str, width: int) -> None:
        self.lines.append(line)
        if width > self.line_width:
            self.line_width = width
        self.rows += 1
        if len(self.lines) >= CHUNK_ROWS:
            self.flush()

    def add_row(self, row: list[Any]) -> None:
        self.values.append(row)
        if len(row) > self.values_width:
            self.values_width = len(row)
        self.rows += 1
        if len(self.values) >= CHUNK_ROWS:
            self.flush()

    def _merge(self, profiles: list[Profile], width: int) -> None:
        for position in range(min(width, len(self.profiles))):
            target, new = self.profiles[position], profiles[position]
            target.merge(new)  # type: ignore[arg-type]  # same kind at the same position
            self.seen[position] = True
        self.width = max(self.width, width)

    def flush(self) -> None:
        n_ref = len(self.reference.columns)
        if self.lines:
            width = self.line_width
            names = [str(i) for i in range(width)]
            selected = names[: min(width, n_ref)]
            text = "\n".join(self.lines)
            profiles, _ = _profile_csv(
                lambda: io.StringIO(text),
                "captured CSV rows",
                self.reference,
                header=False,
                names=names,
                selected=selected,
                positions=list(range(len(selected))),
            )
            self._merge(profiles, width)
            self.lines, self.line_width = [], 0
        if self.values:
            width = self.values_width
            frame = pd.DataFrame(self.values, dtype=object)
            kept = list(range(min(width, n_ref)))
            profiles = _new_profiles(self.reference)
            _profile_columns(frame.iloc[:, kept], kept, self.reference, profiles)
            self._merge(profiles, width)
            self.values, self.values_width = [], 0


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise MonitorInputError(f"{path}: cannot read: {exc.strerror}") from None


def _fast_row(record: Any) -> tuple[str, str] | None:
    """The output and input of the common record, one unquoted CSV row each way captured as text; else None."""
    try:
        capture = record["captureData"]
        request, response = capture["endpointInput"], capture["endpointOutput"]
        if request["encoding"] != "CSV" or response["encoding"] != "CSV":
            return None
        inputs, outputs = request["data"].strip(), response["data"].strip()
    except (KeyError, TypeError, AttributeError):
        return None
    if (
        not inputs
        or not outputs
        or '"' in inputs
        or '"' in outputs
        or "\n" in inputs
        or "\n" in outputs
        or "\r" in inputs
    ):
        return None
    return outputs, inputs


def _general_rows(
    record: Any, where: str, names: list[str], gathered: _CaptureRows, extra_names: set[str]
) -> list[str]:
    """Add any record's rows to ``gathered``; returns the first output value of each row."""
    data = record.get("captureData") if isinstance(record, dict) else None
    if not isinstance(data, dict) or "endpointInput" not in data:
        raise MonitorInputError(f"{where}: no captureData.endpointInput")
    if "endpointOutput" not in data:
        raise MonitorInputError(
            f"{where}: no captureData.endpointOutput: capture the responses too (CaptureMode Output); "
            "the baseline's first column is the model's output"
        )
    try:
        request = decode_payload(data["endpointInput"], f"{where}: endpointInput")
        response = decode_payload(data["endpointOutput"], f"{where}: endpointOutput")
    except ValueError as exc:
        raise MonitorInputError(str(exc)) from None
    out_lines: list[tuple[str, int]] = []
    out_values: list[list[Any]] = []
    if response.format == "CSV":
        out_lines = _csv_rows(response.text)
        n_out = max((w for _, w in out_lines), default=1)
    elif response.format == "JSON":
        out_values = _json_output_rows(_json_document(response.text, f"{where}: endpointOutput"), where)
        n_out = max((len(r) for r in out_values), default=1)
    else:
        raise MonitorInputError(f"{where}: endpointOutput: content type {response.media_type!r} is not CSV or JSON")
    if request.format == "CSV" and response.format == "CSV":
        in_lines = _csv_rows(request.text)
        if len(in_lines) != len(out_lines):
            raise MonitorInputError(f"{where}: the input has {len(in_lines)} rows but the output {len(out_lines)}")
        for (o, wo), (i, wi) in zip(out_lines, in_lines, strict=True):
            gathered.add_line(o + "," + i, wo + wi)
        return [_first_field(o) for o, _ in out_lines]
    if request.format == "CSV":
        in_rows: list[list[Any]] = [next(csv.reader([line])) for line, _ in _csv_rows(request.text)]
    elif request.format == "JSON":
        document = _json_document(request.text, f"{where}: endpointInput")
        in_rows = _json_input_rows(document, names[n_out:], f"{where}: endpointInput", extra_names)
    else:
        raise MonitorInputError(f"{where}: endpointInput: content type {request.media_type!r} is not CSV or JSON")
    if response.format == "CSV":
        out_values = [next(csv.reader([line])) for line, _ in out_lines]
    if len(in_rows) != len(out_values):
        raise MonitorInputError(f"{where}: the input has {len(in_rows)} rows but the output {len(out_values)}")
    for out_row, in_row in zip(out_values, in_rows, strict=True):
        gathered.add_row(out_row + in_row)
    return [_as_text(o[0]) if o else "" for o in out_values]


def read_capture(path: Path, reference: Reference, *, keep_predictions: bool = False) -> Batch:
    """Captured records under ``path`` as rows: output column(s) first, then the input features.

    Args:
        path: a capture file, or a directory searched for ``*.jsonl``.
        reference: the baseline (its column count and kinds type the columns).
        keep_predictions: also keep each record's output and id, for the model-quality merge.

    Raises:
        MonitorInputError: naming the file and line of a record that cannot be read: bad JSON, no
            ``captureData``, no ``endpointOutput``, bad base64, a content type other than CSV or
            JSON, or an output whose row count differs from the input's.
    """
    gathered = _CaptureRows(reference)
    predictions: list[CapturedPrediction] = []
    extra_names: set[str] = set()
    names = reference.names
    records = 0
    loads = orjson.loads  # a third of json.loads' time: parsing the records is most of a capture run
    for file in capture_files(path):
        for number, line in _lines(file):
            try:
                record = loads(line)
            except orjson.JSONDecodeError as exc:
                raise MonitorInputError(
                    f"{file}: line {number}: not a JSON record (or not UTF-8): {exc.msg} at character {exc.pos + 1}"
                ) from None
            records += 1
            fast = _fast_row(record)
            if fast is not None:
                output, inputs = fast
                gathered.add_line(output + "," + inputs, output.count(",") + inputs.count(",") + 2)
                if not keep_predictions:
                    continue
                outputs = [output.split(",", 1)[0].strip()]
            else:
                outputs = _general_rows(record, f"{file}: line {number}", names, gathered, extra_names)
            if keep_predictions:
                metadata = record.get("eventMetadata") or {}
                if not isinstance(metadata, dict):
                    raise MonitorInputError(f"{file}: line {number}: eventMetadata must be an object")
                key = metadata.get("inferenceId") or metadata.get("eventId")
                if not isinstance(key, str) or not key:
                    raise MonitorInputError(f"{file}: line {number}: eventMetadata has neither inferenceId nor eventId")
                predictions.append(CapturedPrediction(key=key, values=outputs, where=f"{file}: line {number}"))
    gathered.flush()
    n_ref = len(reference.columns)
    extra = [f"_c{i}" for i in range(n_ref, gathered.width)] + sorted(extra_names)
    return Batch(
        profiles=[p if gathered.seen[i] else None for i, p in enumerate(gathered.profiles)],
        rows=gathered.rows,
        source=str(path),
        width=gathered.width,
        extra_columns=extra,
        predictions=predictions,
        records=records,
    )


def _looks_like_capture(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() in (".jsonl", ".json"):
        return True
    if path.suffix.lower() == ".csv":
        return False
    with path.open("rb") as handle:
        start = handle.read(256).lstrip()
    return start.startswith(b"{")


def read_batch(path: Path, reference: Reference, *, keep_predictions: bool = False) -> Batch:
    """Read ``path``: a capture file or tree (JSONL), or a plain CSV with a header.

    Raises:
        MonitorInputError: the path does not exist, or its content cannot be read (file and line named).
    """
    if not path.exists():
        raise MonitorInputError(f"{path}: no such file or directory")
    if _looks_like_capture(path):
        return read_capture(path, reference, keep_predictions=keep_predictions)
    if keep_predictions:
        raise MonitorInputError(
            f"{path}: a plain CSV has no event ids to join ground truth on; give the captured data (JSONL)"
        )
    return read_plain_csv(path, reference)
