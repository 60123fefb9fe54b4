"""The server's data capture in one process: settings, the InferenceId header, sampling, counts, failures.

The server over HTTP (several workers, SIGTERM, the monitor reading what it wrote) is in
tests/integration/test_serving_capture.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_code.serving.capture import (
    CaptureSettings,
    InvalidInferenceId,
    RequestCapture,
    inference_id,
)

ROW = b"M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"


def _records(root: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def test_capture_is_off_unless_a_directory_is_given() -> None:
    assert CaptureSettings.from_env({}) is None
    assert CaptureSettings.from_env({"MLOPS_CAPTURE_DIR": "", "MLOPS_CAPTURE_ENDPOINT": "ep"}) is None


def test_settings_from_the_environment_and_back(tmp_path: Path) -> None:
    env = {
        "MLOPS_CAPTURE_DIR": str(tmp_path),
        "MLOPS_CAPTURE_ENDPOINT": "churn-staging",
        "MLOPS_CAPTURE_VARIANT": "blue",
        "MLOPS_CAPTURE_SAMPLING_PERCENTAGE": "25",
    }
    parsed = CaptureSettings.from_env(env)
    assert parsed == CaptureSettings(tmp_path, "churn-staging", "blue", 25)
    assert parsed is not None and CaptureSettings.from_env(parsed.as_env()) == parsed
    defaults = CaptureSettings.from_env({"MLOPS_CAPTURE_DIR": str(tmp_path)})
    assert defaults == CaptureSettings(tmp_path, "local-endpoint", "AllTraffic", 100)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_CAPTURE_SAMPLING_PERCENTAGE": "half"}, "MLOPS_CAPTURE_SAMPLING_PERCENTAGE='half' is not an integer"),
        ({"MLOPS_CAPTURE_SAMPLING_PERCENTAGE": "101"}, "sampling percentage must be an integer from 0 to 100"),
        ({"MLOPS_CAPTURE_SAMPLING_PERCENTAGE": "-1"}, "sampling percentage must be an integer from 0 to 100"),
        ({"MLOPS_CAPTURE_ENDPOINT": "../up"}, "capture endpoint name '../up' is not a SageMaker name"),
        ({"MLOPS_CAPTURE_VARIANT": "a_b"}, "capture variant name 'a_b' is not a SageMaker name"),
        ({"MLOPS_CAPTURE_ENDPOINT": "x" * 64}, "is not a SageMaker name"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        CaptureSettings.from_env({"MLOPS_CAPTURE_DIR": str(tmp_path), **env})


# InvokeEndpoint's InferenceId (botocore's service model): 1-64 chars, \A\S[\p{Print}]*\z, where Java's
# \p{Print} is printable ASCII. Written here as a plain predicate, independently of the code's regex.
def _sagemaker_accepts(value: str) -> bool:
    return 1 <= len(value) <= 64 and all(0x20 <= ord(c) <= 0x7E for c in value) and value[0] != " "


@given(st.text(max_size=80) | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=70))
@settings(max_examples=300, deadline=None)
def test_inference_ids_are_accepted_exactly_when_sagemaker_accepts_them(value: str) -> None:
    header = value.encode("utf-8", "surrogatepass").decode("latin-1")  # as uvicorn hands a header over
    if _sagemaker_accepts(value):
        assert inference_id(header) == value
    else:
        with pytest.raises(InvalidInferenceId, match="X-Amzn-SageMaker-Inference-Id must be 1 to 64 printable"):
            inference_id(header)


def test_no_header_is_no_inference_id_and_a_refusal_shows_what_was_sent() -> None:
    assert inference_id(None) is None
    with pytest.raises(InvalidInferenceId, match="got 'caf\u00e9'"):
        inference_id("café".encode().decode("latin-1"))
    with pytest.raises(InvalidInferenceId, match=r"\(200 characters\)"):
        inference_id("x" * 200)


def test_every_answer_is_one_record_with_its_own_event_id(tmp_path: Path) -> None:
    capture = RequestCapture(CaptureSettings(tmp_path, "ep"))
    for i in range(50):
        capture.record(ROW, "text/csv", b"9.5\n", "text/csv", f"req-{i}" if i % 2 else None)
    capture.close()
    records = _records(tmp_path)
    assert (capture.answered, capture.captured, capture.failed) == (50, 50, 0)
    assert len(records) == 50 and len({r["eventMetadata"]["eventId"] for r in records}) == 50
    assert [r["eventMetadata"].get("inferenceId") for r in records] == [
        f"req-{i}" if i % 2 else None for i in range(50)
    ]
    assert len(list(tmp_path.rglob("*.jsonl"))) == 1  # one file per worker (and hour)


@given(percentage=st.integers(0, 100), requests=st.integers(0, 300), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_sampling_captures_that_share_and_counts_every_answer(
    tmp_path_factory: pytest.TempPathFactory, percentage: int, requests: int, seed: int
) -> None:
    root = tmp_path_factory.mktemp("sampled")
    capture = RequestCapture(CaptureSettings(root, "ep", sampling_percentage=percentage), draw=random.Random(seed))
    for _ in range(requests):
        capture.record(ROW, "text/csv", b"9.5\n", "text/csv", None)
    capture.close()
    written = len(_records(root))
    assert capture.answered == requests == capture.captured + capture.not_sampled
    assert written == capture.captured
    if percentage == 100:
        assert written == requests
    if percentage == 0:
        assert written == 0
    if requests >= 200 and 0 < percentage < 100:  # binomial: within 5 standard deviations
        spread = 5 * (requests * percentage / 100 * (1 - percentage / 100)) ** 0.5
        assert abs(written - requests * percentage / 100) <= spread + 1


def test_a_record_that_cannot_be_written_does_not_fail_the_request(tmp_path: Path, capsys) -> None:
    (tmp_path / "ep").write_text("a file where the endpoint's folder belongs")
    capture = RequestCapture(CaptureSettings(tmp_path, "ep"))
    capture.record(ROW, "text/csv", b"9.5\n", "text/csv", None)  # does not raise
    capture.record(ROW, "text/csv", b"9.5\n", "text/csv", None)
    capture.close()
    assert (capture.answered, capture.captured, capture.failed) == (2, 0, 2)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("capture: worker ") and "2 answered, 0 captured, 0 not sampled, 2 failed" in line


def test_closing_prints_the_counts_and_the_file(tmp_path: Path, capsys) -> None:
    capture = RequestCapture(CaptureSettings(tmp_path, "ep", "blue"))
    capture.record(ROW, "text/csv", b"9.5\n", "text/csv", None)
    capture.refused += 1
    capture.close()
    line = capsys.readouterr().err.strip()
    (path,) = tmp_path.rglob("*.jsonl")
    assert "1 answered, 1 captured, 0 not sampled, 0 failed, 1 refused (4xx/5xx)" in line
    assert line.endswith(f"file {path}")
    assert path.relative_to(tmp_path).parts[:2] == ("ep", "blue")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampling-percentage", "101"], "sampling percentage must be an integer from 0 to 100, got 101"),
        (["--endpoint-name", "my_endpoint"], "capture endpoint name 'my_endpoint' is not a SageMaker name"),
        (["--variant", "a/b"], "capture variant name 'a/b' is not a SageMaker name"),
    ],
)
def test_bad_capture_options_exit_2_naming_them_before_any_worker_starts(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    from ml_code import serve

    for name in ("MLOPS_CAPTURE_DIR", "MLOPS_CAPTURE_ENDPOINT", "MLOPS_CAPTURE_VARIANT"):
        monkeypatch.delenv(name, raising=False)
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.joblib", "schema.json"):
        (model / name).write_text("")  # main() checks the files exist, then the options, before loading anything
    command = ["--model-dir", str(model), "--port", "1"]
    assert serve.main([*command, "--capture-dir", str(tmp_path / "capture"), *args]) == 2
    assert message in capsys.readouterr().err
    assert serve.main([*command, *args]) == 2
    assert "need --capture-dir (data capture is off without it)" in capsys.readouterr().err
