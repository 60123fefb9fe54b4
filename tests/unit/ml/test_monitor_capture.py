"""The data-capture writer and parser: SageMaker's record shape and layout, round trips, bad records."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_code.monitor import CaptureWriter, MonitorInputError, monitor
from ml_code.monitor.batch import NumericProfile, StringProfile, read_capture
from ml_code.monitor.reference import load_reference
from tests.unit.ml.test_monitor_data_quality import write_baseline

KINDS = {"pred": "numeric", "a": "numeric", "colour": "categorical"}
WHEN = datetime(2026, 11, 23, 19, 5, 7, 123000, tzinfo=UTC)


def _baseline(directory: Path, rows: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "pred": rng.normal(5, 1, rows).round(3),
            "a": rng.normal(0, 1, rows).round(4),
            "colour": rng.choice(["red", "green", "blue"], rows),
        }
    )
    return write_baseline(directory, frame, KINDS)


def _writer(root: Path, **kwargs) -> CaptureWriter:
    return CaptureWriter(root, "churn-endpoint", "AllTraffic", clock=lambda: WHEN, **kwargs)


def _records(root: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def test_the_writer_lays_records_out_as_sagemaker_does(tmp_path: Path) -> None:
    path = _writer(tmp_path).write(b"0.5,red", "text/csv", b"5.1\n", "text/csv; charset=utf-8", inference_id="req-1")
    relative = path.relative_to(tmp_path).as_posix()
    assert re.fullmatch(r"churn-endpoint/AllTraffic/2026/11/23/19/05-07-123-[0-9a-f-]{36}\.jsonl", relative)
    (record,) = _records(tmp_path)
    assert record["captureData"] == {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "0.5,red", "encoding": "CSV"},
        "endpointOutput": {
            "observedContentType": "text/csv; charset=utf-8",
            "mode": "OUTPUT",
            "data": "5.1\n",
            "encoding": "CSV",
        },
    }
    metadata = record["eventMetadata"]
    assert metadata["inferenceId"] == "req-1" and metadata["inferenceTime"] == "2026-11-23T19:05:07Z"
    assert re.fullmatch(r"[0-9a-f-]{36}", metadata["eventId"]) and record["eventVersion"] == "0"


def test_unlisted_content_types_and_binary_bodies_are_captured_as_base64(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.write(b'{"instances": [[0.5, "red"]]}', "application/json", b"\xff\xfe", "text/csv")
    writer.write(b"0.5,red", "application/x-custom", b"5", "text/csv")
    first, second = _records(tmp_path)
    assert first["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert first["captureData"]["endpointOutput"] == {
        "observedContentType": "text/csv",
        "mode": "OUTPUT",
        "data": base64.b64encode(b"\xff\xfe").decode(),
        "encoding": "BASE64",
    }
    assert second["captureData"]["endpointInput"]["encoding"] == "BASE64"


def test_one_file_per_writer_and_hour(tmp_path: Path) -> None:
    times = iter([WHEN, WHEN + timedelta(minutes=10), WHEN + timedelta(hours=1)])
    writer = CaptureWriter(tmp_path, "ep", clock=lambda: next(times))
    paths = [writer.write(b"1,red", "text/csv", b"2", "text/csv") for _ in range(3)]
    assert paths[0] == paths[1] and paths[2] != paths[0]
    assert paths[2].parent.name == "20"
    other = CaptureWriter(tmp_path, "ep", clock=lambda: WHEN).write(b"1,red", "text/csv", b"2", "text/csv")
    assert other != paths[0] and other.parent == paths[0].parent


def test_the_file_stays_open_between_records_and_closing_ends_the_writer(tmp_path: Path) -> None:
    import os
    import stat

    with _writer(tmp_path) as writer:
        first = writer.write(b"1,red", "text/csv", b"2", "text/csv")
        # Each record is on disk as soon as write() returns, before any close (nothing is buffered).
        assert len(first.read_text().splitlines()) == 1
        second = writer.write(b"1,red", "text/csv", b"2", "text/csv")
        assert first == second == writer.path
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o600  # captured payloads: the server's user only
    with pytest.raises(ValueError, match="the capture writer is closed"):
        writer.write(b"1,red", "text/csv", b"2", "text/csv")
    writer.close()  # twice is fine
    assert len(_records(tmp_path)) == 2


@pytest.mark.parametrize(("endpoint", "variant"), [("../etc", "AllTraffic"), ("ep", "a/b"), ("", "v"), ("ep_1", "v")])
def test_names_sagemaker_would_refuse_are_refused(tmp_path: Path, endpoint: str, variant: str) -> None:
    with pytest.raises(ValueError, match="is not a SageMaker name"):
        CaptureWriter(tmp_path, endpoint, variant)


def test_csv_json_and_base64_records_read_back_as_the_same_rows(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline")
    plain, b64 = _writer(tmp_path / "cap"), _writer(tmp_path / "cap", csv_content_types=(), json_content_types=())
    rows = [(5.25, -0.5, "red"), (4.0, 1.25, "blue"), (6.5, 0.0, "green"), (5.0, 2.0, "red, dark")]
    for i, (pred, a, colour) in enumerate(rows):
        csv_body = io.StringIO()
        csv.writer(csv_body, lineterminator="").writerow([a, colour])
        if i == 0:
            plain.write(csv_body.getvalue().encode(), "text/csv", f"{pred}\n".encode(), "text/csv")
        elif i == 1:
            body = json.dumps({"instances": [{"a": a, "colour": colour}]}).encode()
            plain.write(body, "application/json", json.dumps({"predictions": [pred]}).encode(), "application/json")
        elif i == 2:
            b64.write(json.dumps([a, colour]).encode(), "application/json", str(pred).encode(), "text/csv")
        else:  # a quoted field holding a comma
            b64.write(csv_body.getvalue().encode(), "text/csv", json.dumps([pred]).encode(), "application/json")
    batch = read_capture(tmp_path / "cap", load_reference(baseline))
    pred, a, colour = batch.profiles
    assert isinstance(pred, NumericProfile) and isinstance(a, NumericProfile) and isinstance(colour, StringProfile)
    assert batch.rows == 4 and batch.records == 4 and batch.width == 3 and batch.extra_columns == []
    assert pred.sorted_values().tolist() == sorted(r[0] for r in rows)
    assert a.sorted_values().tolist() == sorted(r[1] for r in rows)
    assert colour.counts == {"red": 1, "blue": 1, "green": 1, "red, dark": 1}


def test_records_with_several_rows_and_the_documented_aws_record(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline")
    capture = tmp_path / "cap.jsonl"
    multi = _writer(tmp_path / "w")
    multi.write(b"0.1,red\n0.2,blue\n0.3,red\n", "text/csv", b"5\n6\n7\n", "text/csv")
    multi.write(
        json.dumps({"instances": [[0.4, "green"], [None, "red"]]}).encode(),
        "application/json",
        json.dumps({"predictions": [8, 9]}).encode(),
        "application/json",
    )
    # AWS's documented record shape (model-monitor pre-processing example), narrowed to this baseline's width.
    documented = (
        '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"132,",'
        '"encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8","mode":"OUTPUT",'
        '"data":"0.01076381653547287","encoding":"CSV"}},"eventMetadata":{"eventId":'
        '"feca1ab1-8025-47e3-8f6a-99e3fdd7b8d9","inferenceTime":"2019-11-20T23:33:12Z"},"eventVersion":"0"}'
    )
    lines = [line for f in sorted((tmp_path / "w").rglob("*.jsonl")) for line in f.read_text().splitlines()]
    capture.write_text("\n".join([*lines, documented]) + "\n")
    batch = read_capture(capture, load_reference(baseline), keep_predictions=True)
    pred, a, colour = batch.profiles
    assert batch.rows == 6 and batch.records == 3
    assert isinstance(pred, NumericProfile) and pred.sorted_values().tolist() == [0.01076381653547287, 5, 6, 7, 8, 9]
    assert isinstance(a, NumericProfile) and a.missing == 1 and a.present == 5
    assert isinstance(colour, StringProfile) and colour.missing == 1  # the documented record's empty field
    assert [p.values for p in batch.predictions] == [["5", "6", "7"], ["8", "9"], ["0.01076381653547287"]]
    assert batch.predictions[2].key == "feca1ab1-8025-47e3-8f6a-99e3fdd7b8d9"


def test_captured_data_wider_or_narrower_than_the_baseline_is_flagged(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline")
    rng = np.random.default_rng(3)
    draws = [
        (round(rng.normal(5, 1), 3), round(rng.normal(0, 1), 4), rng.choice(["red", "green", "blue"]))
        for _ in range(300)
    ]
    writer = _writer(tmp_path / "wide")
    for pred, a, colour in draws:
        writer.write(f"{a},{colour},extra".encode(), "text/csv", f"{pred}".encode(), "text/csv")
    monitor(baseline, tmp_path / "wide", tmp_path / "out-wide")
    wide = json.loads((tmp_path / "out-wide" / "constraint_violations.json").read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in wide] == [("_c3", "extra_column_check")]
    writer = _writer(tmp_path / "narrow")
    for pred, a, _ in draws:
        writer.write(f"{a}".encode(), "text/csv", f"{pred}".encode(), "text/csv")
    monitor(baseline, tmp_path / "narrow", tmp_path / "out-narrow")
    narrow = json.loads((tmp_path / "out-narrow" / "constraint_violations.json").read_text())["violations"]
    assert [(v["feature_name"], v["constraint_check_type"]) for v in narrow] == [("colour", "missing_column_check")]


cell_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"), max_size=12
).filter(lambda s: s.strip() == s and s.strip().lower() not in {"", "na", "nan", "null", "none", "?"})
row = st.tuples(
    st.floats(allow_nan=False, allow_infinity=False, width=64), st.floats(-1e6, 1e6, allow_nan=False), cell_text
)


@given(st.lists(st.tuples(row, st.sampled_from(["csv", "json", "base64"])), min_size=1, max_size=25))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_whatever_the_writer_writes_the_parser_reads_back(tmp_path_factory, rows) -> None:
    root = tmp_path_factory.mktemp("capture")
    reference = load_reference(_baseline(root / "baseline", rows=200))
    plain, b64 = _writer(root / "cap"), _writer(root / "cap", csv_content_types=(), json_content_types=())
    for (pred, a, text), how in rows:
        writer = b64 if how == "base64" else plain
        if how == "json":
            body = json.dumps({"instances": [[a, text]]}).encode()
            writer.write(body, "application/json", json.dumps({"predictions": [pred]}).encode(), "application/json")
        else:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow([repr(a), text])
            writer.write(buffer.getvalue().encode(), "text/csv", repr(pred).encode(), "text/csv")
    batch = read_capture(root / "cap", reference)
    pred_profile, a_profile, text_profile = batch.profiles
    assert isinstance(pred_profile, NumericProfile) and isinstance(a_profile, NumericProfile)
    assert isinstance(text_profile, StringProfile)
    assert batch.rows == len(rows)
    assert pred_profile.sorted_values().tolist() == sorted(r[0][0] for r in rows)
    assert a_profile.sorted_values().tolist() == sorted(r[0][1] for r in rows)
    expected: dict[str, int] = {}
    for (_, _, text), _ in rows:
        expected[text] = expected.get(text, 0) + 1
    assert text_profile.counts == expected


GOOD = (
    '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"0.5,red","encoding":'
    '"CSV"},"endpointOutput":{"observedContentType":"text/csv","mode":"OUTPUT","data":"5","encoding":"CSV"}},'
    '"eventMetadata":{"eventId":"e1"},"eventVersion":"0"}'
)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", r"line 2: not a JSON record"),
        ('{"eventVersion": "0"}', r"line 2: no captureData\.endpointInput"),
        (
            GOOD.replace(
                ',"endpointOutput":{"observedContentType":"text/csv","mode":"OUTPUT","data":"5","encoding":"CSV"}', ""
            ),
            r"line 2: no captureData\.endpointOutput: capture the responses too",
        ),
        (
            GOOD.replace('"data":"0.5,red","encoding":"CSV"', '"data":"%%%","encoding":"BASE64"'),
            r"line 2: endpointInput\.data is not valid base64",
        ),
        (GOOD.replace('"encoding":"CSV"}}', '"encoding":"XML"}}'), r"line 2: endpointOutput\.encoding must be CSV"),
        (
            GOOD.replace(
                '"observedContentType":"text/csv","mode":"INPUT","data":"0.5,red","encoding":"CSV"',
                '"observedContentType":"text/csv","mode":"INPUT","data":"/9g=","encoding":"BASE64"',
            ),
            r"line 2: endpointInput\.data decodes to bytes that are not UTF-8",
        ),
        (
            GOOD.replace('"data":"0.5,red"', '"data":"0.5,red\\n0.6,blue"'),
            r"line 2: the input has 2 rows but the output 1",
        ),
        (
            GOOD.replace(
                '"observedContentType":"text/csv","mode":"INPUT","data":"0.5,red","encoding":"CSV"',
                '"observedContentType":"application/x-npy","mode":"INPUT","data":"'
                + base64.b64encode(b"abc").decode()
                + '","encoding":"BASE64"',
            ),
            r"line 2: endpointInput: content type 'application/x-npy' is not CSV or JSON",
        ),
        (
            GOOD.replace('"data":"0.5,red","encoding":"CSV"', '"data":"42","encoding":"JSON"'),
            r"line 2: endpointInput: a JSON request must be an object or a list, got int",
        ),
    ],
)
def test_a_bad_record_is_named_by_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    baseline = _baseline(tmp_path / "baseline", rows=100)
    capture = tmp_path / "hour" / "capture.jsonl"
    capture.parent.mkdir()
    capture.write_text(GOOD + "\n" + bad + "\n")
    with pytest.raises(MonitorInputError, match=re.escape(str(capture)) + ": " + message):
        monitor(baseline, tmp_path / "hour", tmp_path / "out")


def test_a_path_with_no_capture_is_named(tmp_path: Path) -> None:
    baseline = _baseline(tmp_path / "baseline", rows=100)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonitorInputError, match=r"empty: no capture files \(\*\.jsonl\)"):
        monitor(baseline, tmp_path / "empty", tmp_path / "out")
    with pytest.raises(MonitorInputError, match=r"nowhere: no such file or directory"):
        monitor(baseline, tmp_path / "nowhere", tmp_path / "out")


# --- whatever a capture file holds: rows, or a MonitorInputError naming the file and line ---------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
_PATHS = [
    ("captureData",),
    ("captureData", "endpointInput"),
    ("captureData", "endpointOutput"),
    ("captureData", "endpointInput", "data"),
    ("captureData", "endpointInput", "encoding"),
    ("captureData", "endpointInput", "observedContentType"),
    ("captureData", "endpointOutput", "data"),
    ("captureData", "endpointOutput", "encoding"),
    ("captureData", "endpointOutput", "observedContentType"),
    ("eventMetadata",),
    ("eventMetadata", "eventId"),
    ("eventMetadata", "inferenceId"),
]


@st.composite
def damaged_records(draw: st.DrawFn) -> bytes:
    """A valid record's line with keys dropped, values of other types, unicode, base64 noise, huge or cut."""
    record = json.loads(GOOD)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS))
        holder: object = record
        for key in path[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            continue
        action = draw(st.sampled_from(["drop", "type", "unicode", "base64", "huge"]))
        if action == "drop":
            holder.pop(path[-1], None)
        elif action == "type":
            holder[path[-1]] = draw(_json_values)
        elif action == "unicode":
            holder[path[-1]] = draw(st.text(max_size=30))
        elif action == "base64":
            holder["encoding"] = "BASE64"
            holder[path[-1]] = base64.b64encode(draw(st.binary(max_size=30))).decode()
        else:
            holder[path[-1]] = "0.5," * draw(st.integers(1000, 50_000))
    line = json.dumps(record, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):
        line = line[: draw(st.integers(0, len(line)))]  # a line cut short (a writer killed mid-write)
    return line


@given(lines=st.lists(damaged_records() | st.binary(max_size=60), min_size=1, max_size=4))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_damaged_capture_is_rows_or_an_error_naming_its_file_and_line(tmp_path_factory, lines) -> None:
    root = tmp_path_factory.mktemp("damaged")
    reference = load_reference(_baseline(root / "baseline", rows=100))
    capture = root / "capture.jsonl"
    capture.write_bytes(GOOD.encode() + b"\n" + b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    for keep in (False, True):  # the drift check, and the model-quality join (reads eventMetadata too)
        try:
            batch = read_capture(capture, reference, keep_predictions=keep)
        except MonitorInputError as exc:
            assert re.match(re.escape(str(capture)) + r": line \d+: \S", str(exc)), str(exc)
        else:
            assert batch.records >= 1 and batch.rows >= 1


_sides = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "observedContentType": _json_values | st.sampled_from(["text/csv", "application/json", "image/png"]),
            "mode": _json_values,
            "data": _json_values | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
            "encoding": _json_values | st.sampled_from(["CSV", "JSON", "BASE64", "base64", "XML"]),
        },
    ),
)


@given(side=_sides)
@settings(max_examples=300, deadline=None)
def test_one_side_of_any_record_decodes_or_is_a_value_error_naming_where(side) -> None:
    from ml_code.monitor.capture import Payload, decode_payload

    try:
        payload = decode_payload(side, "f.jsonl: line 3: endpointInput")
    except ValueError as exc:
        assert str(exc).startswith("f.jsonl: line 3: endpointInput"), str(exc)
    else:
        assert isinstance(payload, Payload) and isinstance(payload.text, str)
        assert payload.format in {"CSV", "JSON", None}
