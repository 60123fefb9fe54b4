"""The CI runner (`pipelines.run`) through boto3 against a moto server on 127.0.0.1.

moto implements SSM, ECR's describe-images (the runner pins the images by digest), and
SageMaker's create/update/describe pipeline, start execution and list its parameters. It
reports every execution Succeeded at once, so no test here takes that status as evidence of
anything: waiting is tested with botocore's Stubber, which scripts the statuses (and
ListPipelineExecutionSteps, which moto lacks).

The discovery parameters hold values no config could derive (``published-...``), so a test
passes only if the runner reads what the stacks published instead of guessing names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.stub import Stubber

from pipelines import run as runner
from pipelines.parameters import ParameterError
from stacks.config import load_config
from tests.integration.conftest import ROOT, aws_client, publish_discovery, push_images

TAG = "sha-feedfacecafebeef"
REGISTRY = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.fixture
def clients(moto_endpoint):
    return aws_client("sagemaker", moto_endpoint), aws_client("ssm", moto_endpoint)


@pytest.fixture
def ecr(moto_endpoint):
    return aws_client("ecr", moto_endpoint)


def _discovery(ssm, prefix: str, ecr=None) -> dict[str, str]:
    publish_discovery(ssm, prefix)
    return push_images(ecr, prefix, TAG) if ecr is not None else {}


def _config(name: str = "dev", prefix: str = "mlops-dev"):
    config = load_config(ROOT / "config" / f"{name}.yaml")
    return config.model_copy(update={"name_prefix": prefix})


def test_upsert_resolves_discovery_references_then_runs(clients, ecr, monkeypatch) -> None:
    monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", "0a1b2c3d4e5f60718293")
    sagemaker, ssm = clients
    digests = _discovery(ssm, "runner-a", ecr)
    config = _config(prefix="runner-a")
    log: list[str] = []
    execution = runner.run(
        config,
        overrides=["MetricThreshold=2.9"],
        start=True,
        wait_for_end=False,
        sagemaker=sagemaker,
        ssm=ssm,
        ecr=ecr,
        tag=TAG,
        log=log.append,
    )
    assert execution is not None
    training = f"{REGISTRY}/runner-a/tr@{digests['runner-a/tr']}"
    inference = f"{REGISTRY}/runner-a/in@{digests['runner-a/in']}"
    assert log == [
        f"images TrainingImage {training}, InferenceImage {inference}",
        f"pipeline runner-a-model-build created (images {TAG})",
        f"started {execution}",
    ]
    described = sagemaker.describe_pipeline(PipelineName="runner-a-model-build")
    assert described["RoleArn"] == "arn:aws:iam::111111111111:role/published-runner-a"
    definition = json.loads(described["PipelineDefinition"])
    text = json.dumps(definition)
    assert "{{ssm" not in text
    preprocess = next(s for s in definition["Steps"] if s["Name"] == "Preprocess")["Arguments"]
    assert preprocess["NetworkConfig"]["VpcConfig"] == {
        "Subnets": ["subnet-0aaa", "subnet-0bbb"],
        "SecurityGroupIds": ["sg-0ccc"],
    }
    assert preprocess["ProcessingOutputConfig"]["KmsKeyId"].startswith("arn:aws:kms:eu-west-1:111111111111:key/")
    # The jobs run the images by digest: the parameters' defaults are pinned (a retrain starts with them).
    assert preprocess["AppSpecification"]["ImageUri"] == {"Get": "Parameters.TrainingImage"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert (defaults["TrainingImage"], defaults["InferenceImage"]) == (training, inference)
    assert defaults["RebuildId"] == "none"
    # The execution was started with the checked parameters: the override, and defaults resolved.
    started = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)["PipelineParameters"]
    values = {p["Name"]: p["Value"] for p in started}
    assert values["MetricThreshold"] == "2.9"
    assert values["InputDataUri"] == "s3://published-data-runner-a/abalone/abalone.csv"
    assert values["SourceCommit"] == "0a1b2c3d4e5f60718293"
    assert (values["TrainingImage"], values["InferenceImage"], values["RebuildId"]) == (training, inference, "none")


def test_an_image_given_by_digest_is_checked_and_one_never_pushed_is_named(clients, ecr) -> None:
    sagemaker, ssm = clients
    digests = _discovery(ssm, "runner-f", ecr)
    pinned = f"{REGISTRY}/runner-f/tr@{digests['runner-f/tr']}"
    assert runner.pin_image(ecr, pinned) == pinned
    assert runner.pin_image(ecr, f"{REGISTRY}/runner-f/tr:{TAG}") == pinned
    with pytest.raises(runner.RunError, match=r"image .*/runner-f/tr:sha-0000000000000000 not found in ECR"):
        runner.pin_image(ecr, f"{REGISTRY}/runner-f/tr:sha-0000000000000000")
    with pytest.raises(runner.RunError, match=r"@sha256:0{64} not found in ECR"):
        runner.pin_image(ecr, f"{REGISTRY}/runner-f/tr@sha256:{'0' * 64}")
    # A run whose images were never pushed stops before the upsert, naming the image.
    publish_discovery(ssm, "runner-g")
    with pytest.raises(runner.RunError, match=rf"image {REGISTRY}/runner-g/tr:{TAG} not found in ECR"):
        runner.run(
            _config(prefix="runner-g"),
            overrides=[],
            start=True,
            wait_for_end=False,
            sagemaker=sagemaker,
            ssm=ssm,
            ecr=ecr,
            tag=TAG,
        )
    names = [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]]
    assert "runner-g-model-build" not in names


def test_a_runner_that_may_not_describe_images_is_told_which_permission(clients) -> None:
    # botocore's Stubber: moto does not enforce IAM, so it cannot answer AccessDenied.
    stubbed = aws_client("ecr", None)
    with Stubber(stubbed) as stub:
        stub.add_client_error("describe_images", service_error_code="AccessDeniedException", http_status_code=400)
        with pytest.raises(runner.RunError, match="ecr:DescribeImages on runner-h/tr was denied"):
            runner.pin_image(stubbed, f"{REGISTRY}/runner-h/tr:{TAG}")


def test_wait_polls_until_the_execution_ends() -> None:
    stubbed = aws_client("sagemaker", None)
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-model-build/execution/abc"
    with Stubber(stubbed) as stub:
        for state in ("Executing", "Executing", "Succeeded"):
            stub.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": state})
        sleeps: list[float] = []
        assert runner.wait(stubbed, arn, sleep=sleeps.append, poll_seconds=30) == "Succeeded"
        assert sleeps == [30, 30]
        stub.assert_no_pending_responses()


def test_wait_gives_up_after_its_timeout() -> None:
    stubbed = aws_client("sagemaker", None)
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-model-build/execution/abc"
    with Stubber(stubbed) as stub:
        for _ in range(3):
            stub.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"})
        with pytest.raises(runner.RunError, match="still Executing after 60 s"):
            runner.wait(stubbed, arn, sleep=lambda _: None, poll_seconds=30, timeout_seconds=60)


def test_a_second_push_updates_the_pipeline(clients, ecr) -> None:
    sagemaker, ssm = clients
    _discovery(ssm, "runner-b", ecr)
    config = _config(prefix="runner-b")
    log: list[str] = []
    for _ in range(2):
        runner.run(
            config,
            overrides=[],
            start=False,
            wait_for_end=False,
            sagemaker=sagemaker,
            ssm=ssm,
            ecr=ecr,
            tag=TAG,
            log=log.append,
        )
    assert [line.split()[2] for line in log if line.startswith("pipeline ")] == ["created", "updated"]


@pytest.mark.parametrize(
    "override",
    [
        "ProcessingInstanceCount=-1",
        "TrainingInstanceType=large",
        "MetricThreshold=good",
        "InputDataUri=file:///tmp/a.csv",
    ],
)
def test_bad_parameters_stop_before_anything_is_upserted(clients, ecr, override: str) -> None:
    sagemaker, ssm = clients
    _discovery(ssm, "runner-c", ecr)
    with pytest.raises(ParameterError):
        runner.run(
            _config(prefix="runner-c"),
            overrides=[override],
            start=True,
            wait_for_end=True,
            sagemaker=sagemaker,
            ssm=ssm,
            ecr=ecr,
            tag=TAG,
        )
    names = [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]]
    assert "runner-c-model-build" not in names


def test_a_missing_discovery_parameter_is_named(clients, ecr) -> None:
    sagemaker, ssm = clients
    with pytest.raises(runner.RunError, match=r"discovery parameter /runner-d/foundation/.* could not be read"):
        runner.run(
            _config(prefix="runner-d"),
            overrides=[],
            start=False,
            wait_for_end=False,
            sagemaker=sagemaker,
            ssm=ssm,
            ecr=ecr,
            tag=TAG,
        )


def test_a_failed_execution_names_the_failed_step() -> None:
    stubbed = aws_client("sagemaker", None)
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-dev-model-build/execution/abc"
    with Stubber(stubbed) as stub:
        stub.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"})
        stub.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Failed"})
        stub.add_response(
            "list_pipeline_execution_steps",
            {
                "PipelineExecutionSteps": [
                    {"StepName": "Train", "StepStatus": "Succeeded"},
                    {
                        "StepName": "QualityGateFailed",
                        "StepStatus": "Failed",
                        "FailureReason": "test regression_metrics.rmse.value = 3.4 is not <= the threshold 3.0",
                    },
                ]
            },
        )
        sleeps: list[float] = []
        with pytest.raises(
            runner.RunError, match=r"failed: QualityGateFailed: test regression_metrics.rmse.value = 3.4"
        ):
            runner.wait(stubbed, arn, sleep=sleeps.append, poll_seconds=30)
        assert sleeps == [30]


def test_cli_reports_a_bad_parameter_and_exits_1(capsys) -> None:
    code = runner.main(["--config", str(ROOT / "config" / "dev.yaml"), "--parameter", "TrainingInstanceCount=0"])
    assert code == 1
    assert "TrainingInstanceCount='0': Input should be greater than or equal to 1" in capsys.readouterr().err


def test_cli_writes_every_definition_offline(tmp_path: Path) -> None:
    assert (
        runner.main(["--config-dir", str(ROOT / "config"), "--definitions-out", str(tmp_path), "--image-tag", TAG]) == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.json", "prod.json", "staging.json"]


def test_the_spark_script_is_uploaded_before_the_upsert(clients, ecr, moto_endpoint) -> None:
    sagemaker, ssm = clients
    s3 = aws_client("s3", moto_endpoint)
    _discovery(ssm, "runner-e", ecr)
    config = _config(prefix="runner-e")
    assert config.model_build is not None
    build = config.model_build.model_copy(
        update={"pipeline": config.model_build.pipeline.model_copy(update={"spark_preprocessing": True})}
    )
    config = config.model_copy(update={"model_build": build})
    bucket = "published-artifacts-runner-e"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    log: list[str] = []
    runner.run(
        config,
        overrides=[],
        start=False,
        wait_for_end=False,
        sagemaker=sagemaker,
        ssm=ssm,
        ecr=ecr,
        s3=s3,
        tag=TAG,
        log=log.append,
    )
    key = f"runner-e-model-build/code/{TAG}/spark_preprocess.py"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == (ROOT / "ml_code" / "spark" / "preprocess.py").read_bytes()
    assert log[1] == f"uploaded preprocess.py to s3://{bucket}/{key}"
    definition = sagemaker.describe_pipeline(PipelineName="runner-e-model-build")["PipelineDefinition"]
    assert f"s3://{bucket}/{key}" in definition
