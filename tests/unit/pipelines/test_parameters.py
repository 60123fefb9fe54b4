"""Pipeline parameters are checked before an upsert or a start, with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.image_tag import image_tag
from pipelines.parameters import ParameterError, check_parameters
from pipelines.run import resolve_references
from pipelines.settings import default_parameters, settings_for
from stacks.config import load_config

ROOT = Path(__file__).resolve().parents[3]
# The defaults as the runner checks them: after the data bucket's discovery parameter is read.
REGISTRY = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
PUBLISHED = {
    "/mlops-dev/foundation/s3/data-bucket": "mlops-dev-data-111111111111-eu-west-1",
    "/mlops-dev/foundation/ecr/training-repository-uri": f"{REGISTRY}/mlops-dev/training",
    "/mlops-dev/foundation/ecr/inference-repository-uri": f"{REGISTRY}/mlops-dev/inference",
}
DEFAULTS = resolve_references(
    default_parameters(settings_for(load_config(ROOT / "config" / "dev.yaml"), "sha-0")), PUBLISHED.__getitem__
)


def test_defaults_from_config_pass_and_render_as_strings() -> None:
    params = check_parameters(DEFAULTS)
    rendered = {p["Name"]: p["Value"] for p in params.as_execution_parameters()}
    assert rendered["ProcessingInstanceType"] == "ml.m5.large"
    assert rendered["MetricThreshold"] == "3.0"
    assert rendered["InputDataUri"] == "s3://mlops-dev-data-111111111111-eu-west-1/abalone/abalone.csv"
    assert "ModelApprovalStatus" not in rendered
    assert rendered["TrainingImage"] == f"{REGISTRY}/mlops-dev/training:sha-0"
    assert rendered["RebuildId"] == "none"


def test_images_are_a_tag_or_a_digest_and_a_rebuild_id_is_plain() -> None:
    digest = "sha256:" + "ab" * 32
    params = check_parameters(DEFAULTS, [f"InferenceImage={REGISTRY}/mlops-dev/inference@{digest}", "RebuildId=r-1"])
    assert params.InferenceImage.endswith(f"@{digest}") and params.RebuildId == "r-1"
    for bad in ("TrainingImage=latest", f"TrainingImage={REGISTRY}/x@sha256:12", "RebuildId=a b"):
        with pytest.raises(ParameterError, match=bad.split("=")[0]):
            check_parameters(DEFAULTS, [bad])


def test_overrides_replace_defaults() -> None:
    params = check_parameters(DEFAULTS, ["TrainingInstanceCount=2", "MetricThreshold=2.5"])
    assert (params.TrainingInstanceCount, params.MetricThreshold) == (2, 2.5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ProcessingInstanceCount=-1", "ProcessingInstanceCount='-1': Input should be greater than or equal to 1"),
        ("TrainingInstanceCount=1.5", "TrainingInstanceCount='1.5'"),
        ("TrainingInstanceType=m5.large", "TrainingInstanceType='m5.large': String should match pattern"),
        ("ProcessingInstanceType=ml.m5", "ProcessingInstanceType='ml.m5': String should match pattern"),
        ("MetricThreshold=high", "MetricThreshold='high': Value error, 'high' is not a number"),
        ("MetricThreshold=nan", "is not a finite number"),
        ("InputDataUri=/data/abalone.csv", "InputDataUri='/data/abalone.csv': String should match pattern"),
        ("InputDataUri=https://bucket/key.csv", "InputDataUri='https://bucket/key.csv'"),
        ("ModelApprovalStatus=Approved", "unknown parameter 'ModelApprovalStatus'"),
        ("Epochs=3", "unknown parameter 'Epochs'"),
        ("MetricThreshold", "expected Name=Value"),
    ],
)
def test_bad_parameters_are_named(override: str, message: str) -> None:
    with pytest.raises(ParameterError) as excinfo:
        check_parameters(DEFAULTS, [override])
    assert message in str(excinfo.value)


def test_image_tag_is_a_content_hash(tmp_path: Path) -> None:
    (tmp_path / "ml_code" / "containers").mkdir(parents=True)
    (tmp_path / "ml_code" / "train.py").write_text("print(1)\n")
    (tmp_path / "ml_code" / "containers" / "Dockerfile").write_text("FROM python\n")
    first = image_tag(tmp_path)
    assert first == image_tag(tmp_path)
    assert first.startswith("sha-") and len(first) == 20
    (tmp_path / "ml_code" / "__pycache__").mkdir()
    (tmp_path / "ml_code" / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0\1")
    assert image_tag(tmp_path) == first  # caches do not change the images
    (tmp_path / "ml_code" / "train.py").write_text("print(2)\n")
    assert image_tag(tmp_path) != first


def test_environment_without_model_build_has_no_pipeline() -> None:
    config = load_config(ROOT / "config" / "dev.yaml").model_copy(update={"model_build": None})
    with pytest.raises(ValueError, match="has no model_build section"):
        settings_for(config, "sha-0")


def test_overrides_are_checked_before_references_are_resolved_but_a_start_needs_them_resolved() -> None:
    unresolved = default_parameters(settings_for(load_config(ROOT / "config" / "dev.yaml"), "sha-0"))
    check_parameters(unresolved, ["TrainingInstanceCount=2"], resolved=False)
    with pytest.raises(ParameterError, match="TrainingInstanceCount='0'"):
        check_parameters(unresolved, ["TrainingInstanceCount=0"], resolved=False)
    with pytest.raises(ParameterError, match=r"unresolved discovery reference in InputDataUri='s3://\{\{ssm:"):
        check_parameters(unresolved)


def test_the_source_commit_comes_from_codebuild_or_github() -> None:
    from pipelines.settings import source_commit

    assert source_commit({"CODEBUILD_RESOLVED_SOURCE_VERSION": "0a1b2c3d4e5f"}) == "0a1b2c3d4e5f"
    assert source_commit({"GITHUB_SHA": "f" * 40}) == "f" * 40
    assert source_commit({}) == "unknown"
    with pytest.raises(ParameterError, match="SourceCommit"):
        check_parameters(DEFAULTS, ["SourceCommit=main; rm -rf /"])
