"""`python -m pipelines.batch` through boto3 against a moto server on 127.0.0.1.

moto implements the registry (packages, approval, list with sort), models made from a package,
pipelines and SSM. Its executions report Succeeded at once, so nothing here takes that as
evidence: the tests assert what the command created and started with.
"""

from __future__ import annotations

import json

import pytest

from pipelines import batch
from pipelines.run import RunError
from stacks.config import load_config
from tests.integration.conftest import ROOT, aws_client, publish_discovery


@pytest.fixture
def clients(moto_endpoint):
    return aws_client("sagemaker", moto_endpoint), aws_client("ssm", moto_endpoint)


def _environment(sagemaker, ssm, prefix: str, statuses: list[str]):
    publish_discovery(ssm, prefix)
    config = load_config(ROOT / "config" / "dev.yaml").model_copy(update={"name_prefix": prefix})
    group = config.model_package_group_name
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arns = []
    for status in statuses:
        arns.append(
            sagemaker.create_model_package(
                ModelPackageGroupName=group,
                ModelApprovalStatus=status,
                InferenceSpecification={
                    "Containers": [{"Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/in:t"}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
            )["ModelPackageArn"]
        )
    return config, arns


def _run(config, sagemaker, ssm, **changes):
    arguments = {
        "input_uri": f"s3://published-data-{config.name_prefix}/scoring/2026-11/",
        "output_uri": None,
        "package_arn": None,
        "instance_type": "ml.m5.xlarge",
        "instance_count": 1,
        "wait_for_end": False,
        "sagemaker": sagemaker,
        "ssm": ssm,
        "log": lambda _line: None,
        **changes,
    }
    return batch.run(config, **arguments)


def test_the_newest_approved_version_scores_the_prefix_in_a_private_isolated_model(clients) -> None:
    sagemaker, ssm = clients
    # Versions 1 and 3 approved, 2 pending, 4 rejected: version 3 is the one to use.
    config, arns = _environment(
        sagemaker, ssm, "batch-a", ["Approved", "PendingManualApproval", "Approved", "Rejected"]
    )
    # moto keeps no EnableNetworkIsolation: read the request as botocore sent it.
    sent: list[dict] = []
    sagemaker.meta.events.register(
        "provide-client-params.sagemaker.CreateModel", lambda params, **_: sent.append(params)
    )
    execution = _run(config, sagemaker, ssm)

    model = sagemaker.describe_model(ModelName="batch-a-batch-3")
    assert [c["ModelPackageName"] for c in model["Containers"]] == [arns[2]]
    assert model["VpcConfig"] == {"Subnets": ["subnet-0aaa", "subnet-0bbb"], "SecurityGroupIds": ["sg-0ccc"]}
    assert [request["EnableNetworkIsolation"] for request in sent] == [True]
    assert model["ExecutionRoleArn"] == "arn:aws:iam::111111111111:role/published-batch-a"

    started = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in started} == {
        "ModelName": "batch-a-batch-3",
        "InputUri": "s3://published-data-batch-a/scoring/2026-11/",
        "OutputUri": "s3://published-artifacts-batch-a/batch-a-batch/output/v3",
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": "1",
    }
    definition = json.loads(sagemaker.describe_pipeline(PipelineName="batch-a-batch")["PipelineDefinition"])
    arguments = definition["Steps"][0]["Arguments"]
    assert "{{ssm" not in json.dumps(definition)
    assert arguments["TransformOutput"]["KmsKeyId"].startswith("arn:aws:kms:eu-west-1:111111111111:key/")


def test_a_second_run_reuses_the_model_and_a_named_version_is_used_exactly(clients) -> None:
    sagemaker, ssm = clients
    config, arns = _environment(sagemaker, ssm, "batch-b", ["Approved", "Approved"])
    _run(config, sagemaker, ssm, package_arn=arns[0])
    _run(config, sagemaker, ssm, package_arn=arns[0])
    model = sagemaker.describe_model(ModelName="batch-b-batch-1")
    assert [c["ModelPackageName"] for c in model["Containers"]] == [arns[0]]


@pytest.mark.parametrize(
    ("statuses", "pick", "changes", "problem"),
    [
        (["PendingManualApproval"], None, {}, "has no Approved version to score with"),
        (["Approved", "Rejected"], 1, {}, "is Rejected: only an Approved version scores in bulk"),
        (["Approved"], None, {"input_uri": "/tmp/local.csv"}, "--input must be an s3://bucket/prefix URI"),
        (["Approved"], None, {"input_uri": "s3://someone-elses-bucket/x/"}, "--input must be in the data bucket"),
        (["Approved"], None, {"output_uri": "s3://published-data-batch-c/out/"}, "--output must be under"),
        (["Approved"], None, {"instance_count": 0}, "--instance-count must be 1 to 100"),
        (["Approved"], None, {"instance_type": "m5.xlarge"}, "--instance-type must look like ml.m5.xlarge"),
    ],
)
def test_a_run_that_cannot_work_says_why_and_starts_nothing(clients, statuses, pick, changes, problem) -> None:
    sagemaker, ssm = clients
    prefix = f"batch-c{abs(hash((tuple(statuses), problem))) % 10_000}"
    config, arns = _environment(sagemaker, ssm, prefix, statuses)
    if "published-data-batch-c" in str(changes.get("output_uri", "")):
        changes = {"output_uri": f"s3://published-data-{prefix}/out/"}
    with pytest.raises(RunError, match=problem):
        _run(config, sagemaker, ssm, package_arn=arns[pick] if pick is not None else None, **changes)
    names = [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]]
    assert f"{prefix}-batch" not in names


def test_a_package_of_another_group_is_refused(clients) -> None:
    sagemaker, ssm = clients
    config, _ = _environment(sagemaker, ssm, "batch-d", ["Approved"])
    _, (other,) = _environment(sagemaker, ssm, "batch-e", ["Approved"])
    with pytest.raises(RunError, match="is in group batch-e-models, not batch-d-models"):
        _run(config, sagemaker, ssm, package_arn=other)


def test_the_command_exits_non_zero_with_one_line_for_a_bad_input(capsys) -> None:
    code = batch.main(["--config", str(ROOT / "config" / "dev.yaml"), "--input", "not-a-uri"])
    assert code == 1
    assert capsys.readouterr().err.strip() == "error: --input must be an s3://bucket/prefix URI, got 'not-a-uri'"
