"""Request parsing and content negotiation for /invocations, including a property-based test."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
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


# --- non-finite and oversized numbers, deep nesting: 400s that name the problem ---------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"instances": [["M", NaN]]}', "NaN is not a JSON number"),
        (b'{"instances": [["M", -Infinity]]}', "-Infinity is not a JSON number"),
        (b'{"instances": [["M", 1e400]]}', "row 1, column 'length': inf is not a finite number"),
        (b'{"instances": [["M", 1' + b"0" * 400 + b"]]}", "row 1, column 'length'"),
        (b'{"instances": [["M", 1' + b"0" * 5000 + b"]]}", "a number is too long"),
        (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"instances": [["M", "-nan"]]}', "'-nan' is not a finite number"),
    ],
)
def test_non_finite_huge_and_deep_json_is_a_400(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        parse_json(body, SCHEMA)
    assert excinfo.value.status == 400
    assert message in excinfo.value.message


def test_an_integer_too_large_for_a_float_names_its_row_and_column() -> None:
    body = b'{"instances": [["M", 1], ["F", 1' + b"0" * 400 + b"]]}"
    with pytest.raises(RequestError) as excinfo:
        parse_json(body, SCHEMA)
    assert "row 2, column 'length'" in excinfo.value.message
    assert "too large for a float" in excinfo.value.message


@pytest.mark.parametrize("cell", ["1e400", "-1e999", "inf", "Infinity", "-nan"])
def test_non_finite_csv_cells_name_their_row_and_column(cell: str) -> None:
    with pytest.raises(RequestError) as excinfo:
        parse_csv(f"M,0.4\nF,{cell}\n".encode(), SCHEMA)
    assert excinfo.value.status == 400
    assert f"row 2, column 'length': '{cell}' is not a finite number" in excinfo.value.message


def test_json_object_missing_a_feature_is_the_same_400_as_a_short_csv_row() -> None:
    with pytest.raises(RequestError) as from_json:
        parse_json(b'{"instances": [{"sex": "M"}]}', SCHEMA)
    with pytest.raises(RequestError) as from_csv:
        parse_csv(b"M\n", SCHEMA)
    assert from_json.value.status == from_csv.value.status == 400
    assert "row 1: missing columns ['length']" in from_json.value.message
    assert "row 1: expected 2 columns (sex, length), found 1" in from_csv.value.message
    # an explicit null is a missing value, as an empty CSV cell is
    assert parse_json(b'{"instances": [{"sex": "M", "length": null}]}', SCHEMA).to_rows()[0][0] == "M"


def test_output_is_strict_json() -> None:
    from ml_code.serving.inference import Prediction

    with pytest.raises(ValueError):
        output_fn(Prediction([math.nan]), "application/json")


# --- fuzzing: whatever arrives, a Table or a 4xx naming it, never another exception -----------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
json_documents = st.one_of(
    json_values,
    st.fixed_dictionaries({"instances": st.lists(st.lists(json_values, max_size=3), max_size=5)}),
    st.fixed_dictionaries(
        {"instances": st.lists(st.dictionaries(st.sampled_from(["sex", "length", "x"]), json_values))}
    ),
)


@given(json_documents)
@settings(max_examples=400, deadline=None)
def test_fuzz_any_json_document_is_rows_or_a_400(document) -> None:
    body = json.dumps(document).encode()  # NaN/Infinity floats become the non-standard literals: also a 400
    try:
        rows = parse_json(body, SCHEMA).to_rows()
    except RequestError as exc:
        assert exc.status == 400 and exc.message
    else:
        assert rows and all(len(row) == 2 for row in rows)
        assert all(isinstance(row[1], float) and not math.isinf(row[1]) for row in rows)


@given(st.text(max_size=300))
@settings(max_examples=400, deadline=None)
def test_fuzz_any_unicode_text_is_rows_or_a_400(text: str) -> None:
    for parse in (parse_csv, parse_json):
        try:
            rows = parse(text.encode("utf-8", "surrogatepass"), SCHEMA).to_rows()
        except RequestError as exc:
            assert exc.status == 400 and exc.message
        else:
            assert all(len(row) == 2 and not math.isinf(row[1]) for row in rows)


@given(st.binary(max_size=400), st.integers(min_value=0, max_value=400))
@settings(max_examples=300, deadline=None)
def test_fuzz_a_valid_body_truncated_anywhere_is_rows_or_a_400(noise: bytes, cut: int) -> None:
    valid = json.dumps({"instances": [["M", 0.5], {"sex": "F", "length": 1}]}).encode()
    for body in (valid[:cut], valid[:cut] + noise, b"M,0.5\nF,1\n"[:cut] + noise):
        for parse in (parse_csv, parse_json):
            try:
                parse(body, SCHEMA)
            except RequestError as exc:
                assert exc.status == 400


# --- the pandas tokenizer path for large plain CSV gives exactly the csv module's answers -----------

csv_text = st.lists(
    st.lists(
        st.one_of(
            st.sampled_from(["M", "F", " I", "NA", "na ", "?", "", "nan", "-nan", "inf", "1e400", "x y", "\u00e9"]),
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(-(10**30), 10**30).map(str),
            st.text(alphabet="0123456789.-e ,\r\t\u3000", max_size=6),
        ),
        min_size=1,
        max_size=3,
    ).map(",".join),
    min_size=1,
    max_size=12,
).flatmap(lambda lines: st.sampled_from(["\n", "\r\n", "\r"]).map(lambda sep: sep.join(lines) + sep))


def _outcome(parse_limit: int, text: str, monkeypatch) -> object:
    import ml_code.serving.inference as inference

    monkeypatch.setattr(inference, "PANDAS_MIN_CHARS", parse_limit)
    try:
        rows = parse_csv(text.encode(), SCHEMA).to_rows()
    except RequestError as exc:
        return ("error", exc.status, exc.message)
    return [[c if not (isinstance(c, float) and math.isnan(c)) else "NaN" for c in row] for row in rows]


@given(csv_text)
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_large_csv_parsed_by_pandas_equals_the_csv_modules_parse(monkeypatch, text: str) -> None:
    assert _outcome(0, text, monkeypatch) == _outcome(10**9, text, monkeypatch)


def test_a_large_plain_csv_takes_the_pandas_path(monkeypatch) -> None:
    import ml_code.serving.inference as inference

    calls = []
    real = inference._plain_csv_grid
    monkeypatch.setattr(inference, "_plain_csv_grid", lambda *a: calls.append(1) or real(*a))
    table = parse_csv(b"M,0.5\nF,NA\n" * 20_000, SCHEMA)
    assert calls and table.rows == 40_000
    assert table.to_rows()[1][0] == "F" and math.isnan(table.to_rows()[1][1])


# --- headers: whatever Accept, Content-Type and CustomAttributes say, a choice or a 4xx naming it ----------

_header_values = (
    st.none()
    | st.text(max_size=60)
    | st.sampled_from(
        [
            "*/*",
            "text/csv",
            "application/json",
            "TEXT/CSV; q=0.9",
            "text/*",
            "application/*",
            "image/png, */*",
            ",",
            ";",
        ]
    )
)


@given(accept=_header_values, content_type=_header_values)
@settings(max_examples=400, deadline=None)
def test_any_accept_is_a_supported_type_or_a_406_naming_it(accept, content_type) -> None:
    try:
        chosen = choose_accept(accept, content_type)
    except RequestError as exc:
        assert exc.status == 406 and f"unsupported Accept {accept!r}" in exc.message
    else:
        assert chosen in ("text/csv", "application/json")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A regressor and a classifier on SCHEMA, fitted on a few rows (input_fn reads the schema and kind)."""
    import numpy as np
    import pandas as pd

    from ml_code.artifact import ModelArtifact
    from ml_code.candidates import build_candidate
    from ml_code.serving.inference import model_fn

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"sex": rng.choice(["F", "I", "M"], 60), "length": rng.normal(0.5, 0.1, 60)})
    models = {}
    for problem, target in (("regression", rng.normal(9, 2, 60)), ("binary", rng.integers(0, 2, 60))):
        classes = ("no", "yes") if problem == "binary" else ()
        schema = DataSchema("rings", ProblemType(problem), SCHEMA.features, classes)
        pipeline = build_candidate(schema, "linear", {"penalty": 0.01}, seed=0, n_jobs=1).fit(frame, target)
        folder = tmp_path_factory.mktemp(problem)
        ModelArtifact(pipeline, schema, {}).save(folder)
        models[problem] = model_fn(folder)
    return models


@given(
    body=st.binary(max_size=80) | st.sampled_from([b"M,0.5\n", b'{"instances": [["M", 0.5]], "probabilities": "yes"}']),
    content_type=_header_values,
    attributes=_header_values,
    problem=st.sampled_from(["regression", "binary"]),
)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_request_headers_parse_to_rows_or_a_400_or_415_naming_the_header(
    tiny_models, body, content_type, attributes, problem
) -> None:
    from ml_code.serving.inference import input_fn

    try:
        request = input_fn(body, content_type, tiny_models[problem], attributes)
    except RequestError as exc:
        assert exc.status in (400, 415), exc.status
        if exc.status == 415:
            assert f"unsupported Content-Type {content_type!r}" in exc.message
        elif "probabilities" in exc.message:
            # which option was wrong, and where it came from
            assert (
                "x-amzn-sagemaker-custom-attributes" in exc.message
                or "JSON body" in exc.message
                or ("only for classifiers" in exc.message and problem == "regression")
            )
    else:
        assert request.table.rows >= 1
        assert not request.probabilities or problem == "binary"


_numbers_text = st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr)


@given(
    rows=st.lists(st.tuples(st.sampled_from(["F", "I", "M"]), _numbers_text), min_size=1, max_size=500),
    where=st.integers(0, 10**6),
    bad=st.sampled_from(["abc", "1e999", "inf", "--1", "0x1p3", "1,5", "1 2", "\u00e9", '"']),
    large_path=st.booleans(),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_bad_cell_anywhere_in_a_body_names_its_row_and_column_on_both_csv_paths(
    monkeypatch, rows, where, bad, large_path
) -> None:
    import csv
    import io

    import ml_code.serving.inference as inference

    monkeypatch.setattr(inference, "PANDAS_MIN_CHARS", 0 if large_path else 10**9)  # both CSV paths
    row = where % len(rows)
    cells = [list(r) for r in rows]
    cells[row][1] = bad
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(cells)
    with pytest.raises(RequestError) as from_csv:
        parse_csv(buffer.getvalue().encode(), SCHEMA)
    document = {"instances": [[s, float(x)] if i != row else [s, bad] for i, (s, x) in enumerate(rows)]}
    with pytest.raises(RequestError) as from_json:
        parse_json(json.dumps(document).encode(), SCHEMA)
    assert from_csv.value.status == from_json.value.status == 400
    for error in (from_csv.value, from_json.value):
        assert f"row {row + 1}, column 'length'" in error.message
