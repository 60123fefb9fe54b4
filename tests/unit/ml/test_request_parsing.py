"""Request parsing and content negotiation for /invocations, including a property-based test."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_code.schema import DataSchema, Feature, ProblemType
from ml_code.serving.inference import RequestError, choose_accept, output_fn, parse_csv, parse_json

SCHEMA = DataSchema(
    "rings", ProblemType.REGRESSION, (Feature("sex", "categorical", ("F", "I", "M")), Feature("length", "numeric"))
)


def test_csv_rows_parse_to_typed_cells() -> None:
    rows = parse_csv(b"M,0.45\nF,\n\nI,NA\n", SCHEMA).to_rows()
    assert rows[0] == ["M", 0.45]
    assert rows[1][0] == "F" and math.isnan(rows[1][1])
    assert len(rows) == 3  # blank lines are skipped


def test_json_accepts_lists_and_objects() -> None:
    rows = parse_json(b'{"instances": [["M", 0.4], {"sex": "F", "length": "0.3"}, {"sex": null, "length": 1}]}', SCHEMA)
    assert rows.to_rows() == [["M", 0.4], ["F", 0.3], [None, 1.0]]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is empty"),
        (b"\n \n", "body is empty"),
        (b"M,0.4,1\n", "row 1: expected 2 columns (sex, length), found 3"),
        (b"M,0.4\nF,abc\n", "row 2, column 'length': 'abc' is not a number"),
        (b"M,inf\n", "row 1, column 'length': 'inf' is not a finite number"),
        (b"\xff\xfe", "body is not UTF-8 text"),
    ],
)
def test_bad_csv_is_a_400_naming_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        parse_csv(body, SCHEMA)
    assert excinfo.value.status == 400
    assert message in excinfo.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"rows": [["M", 1]]}', 'must be an object with "instances"'),
        (b"[1, 2]", 'must be an object with "instances"'),
        (b'{"instances": []}', '"instances" must be a non-empty list'),
        (b'{"instances": [["M"]]}', "row 1: expected 2 columns"),
        (b'{"instances": [{"sex": "M", "weight": 2}]}', "row 1: unknown columns ['weight']"),
        (b'{"instances": [["M", true]]}', "row 1, column 'length': True is not a number"),
        (b'{"instances": [["M", [1]]]}', "row 1, column 'length'"),
        (b'{"instances": ["M,1"]}', "row 1: expected a list of values or an object"),
    ],
)
def test_bad_json_is_a_400_naming_the_problem(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        parse_json(body, SCHEMA)
    assert excinfo.value.status == 400
    assert message in excinfo.value.message


@pytest.mark.parametrize(
    ("accept", "content_type", "chosen"),
    [
        (None, "text/csv", "text/csv"),
        ("", "application/json", "application/json"),
        ("*/*", "text/csv; charset=utf-8", "text/csv"),
        ("application/json", "text/csv", "application/json"),
        ("image/png, text/csv;q=0.5", "application/json", "text/csv"),
        ("text/*", "application/json", "text/csv"),
    ],
)
def test_accept_negotiation(accept, content_type, chosen) -> None:
    assert choose_accept(accept, content_type) == chosen


def test_unsupported_accept_is_406() -> None:
    with pytest.raises(RequestError) as excinfo:
        choose_accept("image/png", "text/csv")
    assert excinfo.value.status == 406


def test_output_formats() -> None:
    assert output_fn([1.5, 2.0], "text/csv") == b"1.5\n2.0\n"
    assert output_fn(["a,b", "c"], "text/csv") == b'"a,b"\nc\n'
    assert json.loads(output_fn(["yes"], "application/json")) == {"predictions": ["yes"]}


# --- property-based ------------------------------------------------------------------------------

numbers = st.floats(allow_nan=False, allow_infinity=False, width=32)
labels = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8).filter(
    lambda s: s.strip() == s and s.lower() not in {"na", "nan", "null", "none", "?"}
)
rows_strategy = st.lists(st.tuples(labels, numbers), min_size=1, max_size=20)


@given(rows_strategy)
@settings(max_examples=200, deadline=None)
def test_any_valid_table_round_trips_through_csv(rows) -> None:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([[s, repr(float(x))] for s, x in rows])
    parsed = parse_csv(buffer.getvalue().encode(), SCHEMA).to_rows()
    assert parsed == [[s, float(x)] for s, x in rows]


@given(rows_strategy)
@settings(max_examples=200, deadline=None)
def test_any_valid_table_round_trips_through_json(rows) -> None:
    body = json.dumps({"instances": [[s, x] for s, x in rows]}).encode()
    assert parse_json(body, SCHEMA).to_rows() == [[s, float(x)] for s, x in rows]


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash_the_parsers(body: bytes) -> None:
    # Whatever a client sends, the outcome is rows or a 400: never another exception (a 500).
    for parse in (parse_csv, parse_json):
        try:
            rows = parse(body, SCHEMA).to_rows()
        except RequestError as exc:
            assert exc.status == 400
        else:
            assert all(len(row) == 2 for row in rows)
