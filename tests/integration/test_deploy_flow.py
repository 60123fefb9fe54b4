"""The deploy as a whole: the synthesized state machine walks dev, staging and prod with the real steps.

Given dev's deploy as synthesized (its state machine definition and its functions' STAGES setting),
a registry in a moto server on 127.0.0.1 and, for each stage, a local endpoint (the real model server
behind a router, ``tools/local_aws/endpoints.py``). The state machine runs in
``tools/local_aws/stepfunctions.py`` (moto runs Lambda tasks only in Docker); its tasks are the
deploy's own handler. A person approves prod with ``pipelines.approve`` as they would in AWS.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import urllib.request
from typing import Any

import pytest
from model_deploy import handler
from model_deploy.deploy import Deployer
from model_deploy.events import ModelPackageStateChange, Settings
from model_deploy.registry import Registry

from pipelines import approve
from stacks.config import load_config
from tests.conftest import ROOT
from tests.integration.conftest import REGION, aws_client
from tools.local_aws.endpoints import LocalEndpoint, LocalStage
from tools.local_aws.stepfunctions import LocalStateMachine, definition_from_template

ACCOUNT = "123456789012"
GROUP = "mlops-dev-models"
ARTIFACTS = "mlops-dev-artifacts-123456789012-eu-west-1"
SAMPLE = ROOT / "data" / "abalone.csv"


def _deploy_resources(app) -> tuple[dict[str, Any], str, dict[str, str]]:
    template = app.templates["dev"]["Deploy"]
    resources = template["Resources"]
    (machine,) = [k for k, v in resources.items() if v["Type"] == "AWS::StepFunctions::StateMachine"]
    functions = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    (tasks,) = [k for k, p in functions.items() if p["FunctionName"] == "mlops-dev-deploy-tasks"]
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-dev-deploy-tasks"
    definition = definition_from_template(template, machine, {tasks: arn})
    return definition, arn, functions[tasks]["Environment"]["Variables"]


class Approver:
    """A person who approves whatever waits before prod, with pipelines.approve."""

    def __init__(self, machine: LocalStateMachine, config, dynamodb) -> None:
        self.machine, self.config, self.dynamodb = machine, config, dynamodb
        self.decisions: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.machine.waiting_tokens() and approve.waiting(self.config, self.dynamodb, "prod"):
                decided = approve.decide(
                    self.config,
                    stage="prod",
                    approve=True,
                    reason="reviewed",
                    version=None,
                    dynamodb=self.dynamodb,
                    stepfunctions=self.machine,
                    caller="arn:aws:iam::123456789012:role/bob",
                )
                self.decisions.append(decided.version)
            time.sleep(0.05)


@pytest.fixture
def flow(single_account, trained_run, moto_endpoint, tmp_path, monkeypatch):
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        monkeypatch.setenv(name, value)
    c = {s: aws_client(s, moto_endpoint) for s in ("s3", "sagemaker", "sns", "sqs", "dynamodb", "stepfunctions")}
    definition, function_arn, environment = _deploy_resources(single_account)
    c["s3"].create_bucket(Bucket=ARTIFACTS, CreateBucketConfiguration={"LocationConstraint": REGION})
    c["dynamodb"].create_table(
        TableName=environment["TABLE_NAME"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic = c["sns"].create_topic(Name="mlops-dev-deploy")["TopicArn"]
    queue = c["sqs"].create_queue(QueueName="deploy-flow")["QueueUrl"]
    queue_arn = c["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    state_machine = c["stepfunctions"].create_state_machine(
        name="mlops-dev-deploy",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-deploy",
    )["stateMachineArn"]
    settings = Settings.model_validate({**environment, "TOPIC_ARN": topic, "STATE_MACHINE_ARN": state_machine})
    c["sagemaker"].create_model_package_group(ModelPackageGroupName=GROUP)

    # The model local_run trained, as the pipeline's Train step leaves it: model.tar.gz in the artifacts bucket.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path in sorted((trained_run[0] / "model").iterdir()):
            tar.add(path, arcname=path.name)
    c["s3"].put_object(Bucket=ARTIFACTS, Key="mlops-dev-model-build/run/model.tar.gz", Body=archive.getvalue())
    c["s3"].put_object(
        Bucket=ARTIFACTS, Key="mlops-dev-model-build/run/test/test.csv", Body=SAMPLE.read_bytes()[:20_000]
    )

    endpoints = {
        s.name: LocalEndpoint(s.endpoint_name, work_dir=tmp_path / "models", capture_root=None, bake_seconds=0.2)
        for s in settings.stages
    }
    stages = {
        s.name: LocalStage(s, endpoint=endpoints[s.name], sagemaker=c["sagemaker"], s3=c["s3"]) for s in settings.stages
    }
    deployer = Deployer(
        settings,
        registry=Registry(c["sagemaker"], GROUP),
        stage=lambda s, _id: stages[s.name],
        s3=c["s3"],
        sns=c["sns"],
        dynamodb=c["dynamodb"],
        stepfunctions=c["stepfunctions"],
    )
    visited: list[str] = []
    machine = LocalStateMachine(
        definition,
        arn=state_machine,
        handlers={function_arn: lambda payload: deployer.run(handler.parse_task(payload))},
        wait_scale=0.01,
        on_state=lambda name, _type: visited.append(name),
    )
    approver = Approver(machine, load_config(ROOT / "config" / "dev.yaml"), c["dynamodb"])
    try:
        yield {
            "c": c,
            "deployer": deployer,
            "machine": machine,
            "stages": stages,
            "visited": visited,
            "approver": approver,
            "queue": queue,
            "settings": settings,
        }
    finally:
        approver.stop.set()
        for endpoint in endpoints.values():
            endpoint.close()


def _register(flow, number: int) -> str:
    c = flow["c"]
    return c["sagemaker"].create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-dev/inference:t",
                    "ModelDataUrl": f"s3://{ARTIFACTS}/mlops-dev-model-build/run/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={
            "test_data_uri": f"s3://{ARTIFACTS}/mlops-dev-model-build/run/test",
            "target": "rings",
            "problem_type": "regression",
        },
    )["ModelPackageArn"]


def _approved_event(arn: str, event_id: str) -> ModelPackageStateChange:
    number = int(arn.rsplit("/", 1)[1])
    return ModelPackageStateChange.model_validate(
        {
            "version": "0",
            "id": event_id,
            "detail-type": "SageMaker Model Package State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": "2026-12-04T10:00:00Z",
            "region": REGION,
            "resources": [arn],
            "detail": {
                "ModelPackageGroupName": GROUP,
                "ModelPackageVersion": number,
                "ModelPackageArn": arn,
                "ModelApprovalStatus": "Approved",
            },
        }
    )


def _run(flow, arn: str, event_id: str):
    decision = flow["deployer"].on_package_change(_approved_event(arn, event_id))
    assert decision.action == "started"
    sfn = flow["c"]["stepfunctions"]
    plan = json.loads(sfn.describe_execution(executionArn=decision.execution_arn)["input"])
    execution = flow["machine"].start(plan, name=decision.execution_arn.rsplit(":", 1)[1])
    sfn.stop_execution(executionArn=decision.execution_arn)  # the local run is over: leave the queue
    return execution


def _subjects(flow) -> list[str]:
    sqs, out = flow["c"]["sqs"], []
    while messages := sqs.receive_message(QueueUrl=flow["queue"], MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            out.append(json.loads(message["Body"])["Subject"])
            sqs.delete_message(QueueUrl=flow["queue"], ReceiptHandle=message["ReceiptHandle"])
    return out


@pytest.mark.slow
def test_an_approved_version_goes_through_dev_and_staging_then_after_a_persons_approval_to_prod(flow) -> None:
    v1 = _register(flow, 1)
    execution = _run(flow, v1, "event-1")
    assert execution.status == "SUCCEEDED", (execution.error, execution.cause)
    # Every stage serves v1, each from its own server behind its router.
    for stage in flow["stages"].values():
        assert stage.served().package_arn == v1
    # prod waited for the person, after staging's smoke test.
    visited = flow["visited"]
    assert flow["approver"].decisions == [1]
    assert visited.index("Approval") > max(
        i for i, name in enumerate(visited) if name == "SmokeTest" and i < visited.index("Approval")
    )
    assert visited.count("SmokeTest") == 3 and visited.count("Approval") == 1
    assert _subjects(flow) == [
        "Deploy started: v1 (approved)",
        "Approve v1 for prod?",
        "Deploy succeeded: v1 (approved)",
    ]


@pytest.mark.slow
def test_a_newer_version_moves_every_stage_blue_green_and_the_old_servers_stop(flow) -> None:
    v1, v2 = _register(flow, 1), _register(flow, 2)
    assert _run(flow, v1, "event-1").status == "SUCCEEDED"
    old = {name: stage.endpoint.router.current.process for name, stage in flow["stages"].items()}
    second = _run(flow, v2, "event-2")
    assert second.status == "SUCCEEDED", (second.error, second.cause)
    for name, stage in flow["stages"].items():
        assert stage.served().package_arn == v2
        assert old[name].poll() is not None  # blue stopped after the switch
        assert [package for _, package in stage.endpoint.switches] == [v1, v2]
    assert flow["approver"].decisions == [1, 2]


@pytest.mark.slow
def test_a_failing_smoke_test_stops_the_deploy_before_prod_and_says_why(flow, monkeypatch) -> None:
    v1, v2 = _register(flow, 1), _register(flow, 2)
    assert _run(flow, v1, "event-1").status == "SUCCEEDED"
    _subjects(flow)
    # v2's registered test split names a target the model's rows do not carry: every answer is a 400.
    flow["c"]["sagemaker"].update_model_package(ModelPackageArn=v2, CustomerMetadataProperties={"target": "sex"})
    failed = _run(flow, v2, "event-2")
    assert failed.status == "FAILED" and failed.error == "DeployFailed"
    assert flow["stages"]["prod"].served().package_arn == v1  # never reached
    assert flow["approver"].decisions == [1]
    subjects = _subjects(flow)
    assert subjects[-1] == "Deploy FAILED: v2 (approved)"
