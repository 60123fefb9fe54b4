"""The CI runner (`ml_code.pipelines.run`) through boto3 against a moto server on 127.0.0.1.

moto implements SSM, and SageMaker's create/update/describe pipeline, start execution and
describe execution (it reports executions Succeeded at once). It does not implement
ListPipelineExecutionSteps, and cannot make an execution fail: the failure path alone uses
botocore's Stubber for those two calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.stub import Stubber

from ml_code.pipelines import run as runner
from ml_code.pipelines.parameters import ParameterError
from stacks.config import load_config
from tests.integration.conftest import ROOT, aws_client

TAG = "sha-feedfacecafebeef"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def clients(moto_endpoint):
    return aws_client("sagemaker", moto_endpoint), aws_client("ssm", moto_endpoint)


def _discovery(ssm, prefix: str) -> None:
    values = {
        f"/{prefix}/foundation/kms/data-key-arn": f"arn:aws:kms:eu-west-1:111111111111:key/{KEY_ID}",
        f"/{prefix}/foundation/network/private-subnet-ids": "subnet-0aaa,subnet-0bbb",
        f"/{prefix}/model-build/job-security-group-id": "sg-0ccc",
    }
    for name, value in values.items():
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


def _config(name: str = "dev", prefix: str = "mlops-dev"):
    config = load_config(ROOT / "config" / f"{name}.yaml")
    return config.model_copy(update={"name_prefix": prefix})


def test_upsert_resolves_discovery_references_then_runs(clients) -> None:
    sagemaker, ssm = clients
    _discovery(ssm, "runner-a")
    config = _config(prefix="runner-a")
    log: list[str] = []
    execution = runner.run(
        config,
        overrides=["MetricThreshold=2.9"],
        start=True,
        wait_for_end=True,
        sagemaker=sagemaker,
        ssm=ssm,
        tag=TAG,
        log=log.append,
    )
    assert execution is not None
    assert log[0] == f"pipeline runner-a-model-build created (images {TAG})"
    assert log[-1] == "execution Succeeded"
    described = sagemaker.describe_pipeline(PipelineName="runner-a-model-build")
    assert described["RoleArn"] == "arn:aws:iam::111111111111:role/runner-a-sagemaker-pipeline"
    definition = json.loads(described["PipelineDefinition"])
    text = json.dumps(definition)
    assert "{{ssm" not in text
    preprocess = next(s for s in definition["Steps"] if s["Name"] == "Preprocess")["Arguments"]
    assert preprocess["NetworkConfig"]["VpcConfig"] == {
        "Subnets": ["subnet-0aaa", "subnet-0bbb"],
        "SecurityGroupIds": ["sg-0ccc"],
    }
    assert preprocess["ProcessingOutputConfig"]["KmsKeyId"].startswith("arn:aws:kms:eu-west-1:111111111111:key/")
    status = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution)
    assert status["PipelineExecutionStatus"] == "Succeeded"


def test_a_second_push_updates_the_pipeline(clients) -> None:
    sagemaker, ssm = clients
    _discovery(ssm, "runner-b")
    config = _config(prefix="runner-b")
    log: list[str] = []
    for _ in range(2):
        runner.run(
            config, overrides=[], start=False, wait_for_end=False, sagemaker=sagemaker, ssm=ssm, tag=TAG, log=log.append
        )
    assert [line.split()[2] for line in log] == ["created", "updated"]


@pytest.mark.parametrize(
    "override",
    [
        "ProcessingInstanceCount=-1",
        "TrainingInstanceType=large",
        "MetricThreshold=good",
        "InputDataUri=file:///tmp/a.csv",
    ],
)
def test_bad_parameters_stop_before_anything_is_upserted(clients, override: str) -> None:
    sagemaker, ssm = clients
    _discovery(ssm, "runner-c")
    with pytest.raises(ParameterError):
        runner.run(
            _config(prefix="runner-c"),
            overrides=[override],
            start=True,
            wait_for_end=True,
            sagemaker=sagemaker,
            ssm=ssm,
            tag=TAG,
        )
    names = [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]]
    assert "runner-c-model-build" not in names


def test_a_missing_discovery_parameter_is_named(clients) -> None:
    sagemaker, ssm = clients
    with pytest.raises(runner.RunError, match=r"discovery parameter /runner-d/foundation/.* could not be read"):
        runner.run(
            _config(prefix="runner-d"),
            overrides=[],
            start=False,
            wait_for_end=False,
            sagemaker=sagemaker,
            ssm=ssm,
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


def test_the_spark_script_is_uploaded_before_the_upsert(clients, moto_endpoint) -> None:
    sagemaker, ssm = clients
    s3 = aws_client("s3", moto_endpoint)
    _discovery(ssm, "runner-e")
    config = _config(prefix="runner-e")
    assert config.model_build is not None
    build = config.model_build.model_copy(
        update={"pipeline": config.model_build.pipeline.model_copy(update={"spark_preprocessing": True})}
    )
    config = config.model_copy(update={"model_build": build})
    bucket = "runner-e-artifacts-111111111111-eu-west-1"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    log: list[str] = []
    runner.run(
        config,
        overrides=[],
        start=False,
        wait_for_end=False,
        sagemaker=sagemaker,
        ssm=ssm,
        s3=s3,
        tag=TAG,
        log=log.append,
    )
    key = f"runner-e-model-build/code/{TAG}/spark_preprocess.py"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == (ROOT / "ml_code" / "spark" / "preprocess.py").read_bytes()
    assert log[0] == f"uploaded preprocess.py to s3://{bucket}/{key}"
    definition = sagemaker.describe_pipeline(PipelineName="runner-e-model-build")["PipelineDefinition"]
    assert f"s3://{bucket}/{key}" in definition
