"""The batch-transform pipeline, built offline by the sagemaker SDK: one encrypted, captured, multi-record job."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.batch import MAX_PAYLOAD_MB, definition_json, write_definitions
from stacks.config import load_config
from tests.unit.pipelines.offline import no_network

ROOT = Path(__file__).resolve().parents[3]
KEY = "{{ssm:/mlops-dev/foundation/kms/data-key-arn}}"


@pytest.fixture(scope="module")
def transform() -> dict:
    with no_network():
        definition = definition_json(load_config(ROOT / "config" / "dev.yaml"))
    assert [(p["Name"], p["Type"]) for p in definition["Parameters"]] == [
        ("ModelName", "String"),
        ("InputUri", "String"),
        ("OutputUri", "String"),
        ("InstanceType", "String"),
        ("InstanceCount", "Integer"),
    ]
    (step,) = definition["Steps"]
    assert (step["Name"], step["Type"]) == ("Transform", "Transform")
    return dict(step["Arguments"])


def test_the_job_is_named_for_the_roles_transform_statement(transform: dict) -> None:
    # The pipeline role may create transform jobs named mlops-dev-batch-* only (execution_role.py).
    assert transform["TransformJobName"] == "mlops-dev-batch-transform"
    assert transform["ModelName"] == {"Get": "Parameters.ModelName"}


def test_requests_are_multi_record_lines_of_at_most_six_megabytes(transform: dict) -> None:
    assert transform["BatchStrategy"] == "MultiRecord"
    assert transform["MaxPayloadInMB"] == MAX_PAYLOAD_MB == 6
    assert transform["TransformInput"]["SplitType"] == "Line"
    assert transform["TransformInput"]["ContentType"] == "text/csv"
    assert transform["TransformOutput"]["AssembleWith"] == "Line"
    assert transform["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 600, "InvocationsMaxRetries": 1}


def test_volume_output_and_capture_use_the_data_key(transform: dict) -> None:
    assert transform["TransformResources"]["VolumeKmsKeyId"] == KEY
    assert transform["TransformOutput"]["KmsKeyId"] == KEY
    assert transform["DataCaptureConfig"] == {
        "DestinationS3Uri": "s3://{{ssm:/mlops-dev/foundation/s3/artifacts-bucket}}/mlops-dev-batch/capture",
        "KmsKeyId": KEY,
        "GenerateInferenceId": True,
    }


def test_a_definition_per_environment_with_a_build_is_written_offline(tmp_path: Path) -> None:
    written = write_definitions(ROOT / "config", tmp_path)
    assert [path.name for path in written] == ["dev-batch.json", "staging-batch.json", "prod-batch.json"]
