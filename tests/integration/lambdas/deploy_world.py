"""The deploy's world for its integration tests: staging's endpoint stack in moto, a registry, the deploy's resources.

Given: staging's synthesized endpoint stack (``cdk.out``, as ``cdk deploy`` creates it: no model)
created in moto's CloudFormation, a registry with approved versions whose metadata names their
test split, and the deploy's table, topic and state machine. The functions find the local server
through ``AWS_ENDPOINT_URL``; nothing in the code under test is patched. The ``world`` fixture is
registered by this folder's ``conftest.py``.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from model_deploy.deploy import Deployer
from model_deploy.events import Plan, PlannedStage, Settings, Task, Version
from model_deploy.registry import Registry
from model_deploy.stage import Stage

from tests.conftest import ROOT
from tests.integration.conftest import REGION, aws_client
from tests.integration.lambdas.conftest import without_monitoring
from tools.local_endpoint import LocalRuntime

ACCOUNT = "123456789012"  # moto's account
GROUP = "mlops-dev-models"
STACK = "mlops-staging-endpoint"
STATE_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:mlops-dev-deploy"
ARTIFACTS = "mlops-dev-artifacts-123456789012-eu-west-1"
SAMPLE = ROOT / "data" / "abalone.csv"


def _exports(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """A stack exporting what the endpoint template imports from its foundation, with moto's real ids."""
    names = sorted(set(re.findall(r'"Fn::ImportValue": "([^"]+)"', json.dumps(template))))
    outputs = {}
    for i, name in enumerate(names):
        (value,) = [v for key, v in values.items() if key in name]
        outputs[f"Export{i}"] = {"Value": value, "Export": {"Name": name}}
    return {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/exports", "Type": "String", "Value": "1"},
            }
        },
        "Outputs": outputs,
    }


@dataclass
class World:
    endpoint: str
    clients: dict[str, Any]
    settings: Settings
    runtime: LocalRuntime
    queue_url: str
    versions: list[Version]

    def client(self, service: str) -> Any:
        return self.clients[service]

    def stage(self, name: str = "staging") -> Stage:
        settings = self.settings.stage(name)
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        stage = Stage.assume(settings, session=session, deploy_id="test")
        stage.runtime = self.runtime  # moto's runtime answers a canned body: the smoke test calls a real server
        return stage

    def deployer(self, *, p95_ms: float = 5000) -> Deployer:
        sm = self.client("sagemaker")
        stages = [s.model_copy(update={"smoke_p95_ms": p95_ms}) for s in self.settings.stages]
        return Deployer(
            self.settings.model_copy(update={"stages": stages}),
            registry=Registry(sm, GROUP),
            stage=lambda settings, _id: self.stage(settings.name),
            s3=self.client("s3"),
            sns=self.client("sns"),
            dynamodb=self.client("dynamodb"),
            stepfunctions=self.client("stepfunctions"),
        )

    def notifications(self) -> list[dict[str, Any]]:
        sqs, out = self.client("sqs"), []
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                envelope = json.loads(message["Body"])
                out.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out

    def stack_parameters(self) -> dict[str, str]:
        (stack,) = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
        return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack["Parameters"]}

    def serve_endpoint_on(self, config: str) -> None:
        """What SageMaker's guardrails leave after rolling an update back: the endpoint on ``config``."""
        sm = self.client("sagemaker")
        name = self.stage().served().endpoint_name
        sm.delete_endpoint(EndpointName=name)
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config)


def package_event(version: Version, status: str, event_id: str | None = None) -> dict[str, Any]:
    """EventBridge's "SageMaker Model Package State Change", as SageMaker's documentation shows it."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-12-04T10:00:00Z",
        "region": REGION,
        "resources": [version.arn],
        "detail": {
            "ModelPackageGroupName": GROUP,
            "ModelPackageVersion": version.number,
            "ModelPackageArn": version.arn,
            "CreationTime": "2026-12-04T09:00:00Z",
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": status,
            "LastModifiedTime": "2026-12-04T10:00:00Z",
        },
    }


@pytest.fixture
def world(single_account, server, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The local AWS, emptied first (the template's names are fixed), holding staging's endpoint stack."""
    endpoint = moto_endpoint
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
    ):
        monkeypatch.setenv(name, value)
    clients = {
        s: aws_client(s, endpoint)
        for s in ("cloudformation", "ssm", "ec2", "kms", "s3", "sagemaker", "sns", "sqs", "dynamodb", "stepfunctions")
    }
    yield _build(endpoint, clients, single_account, server[0])


def _build(endpoint: str, c: dict[str, Any], app, server_port: int) -> World:
    # --- the foundation staging's endpoint stack imports, as real moto resources ----------------
    c["ssm"].put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String")
    vpc = c["ec2"].create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [c["ec2"].create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)]
    monitoring = "mlops-staging-monitoring-123456789012-eu-west-1"
    for bucket in (monitoring, ARTIFACTS):
        c["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    # The monitoring is not what the deploy functions act on, and moto cannot create it.
    template = without_monitoring(app.templates["staging"]["Endpoint"], app.stages["staging"])
    for resource in template["Resources"].values():
        resource.get("Properties", {}).pop("Tags", None)  # moto cannot create tagged KMS keys from a template
    values = {
        "DataKey": c["kms"].create_key()["KeyMetadata"]["Arn"],
        "LogsKey": c["kms"].create_key()["KeyMetadata"]["Arn"],
        "Monitoring": monitoring,
        "Subnet1": subnets[0],
        "Subnet2": subnets[1],
        "NetworkVpc7": vpc,
    }
    c["cloudformation"].create_stack(
        StackName="mlops-staging-foundation", TemplateBody=json.dumps(_exports(template, values))
    )
    # What `cdk deploy` does: create the stack with no model (moto needs every parameter given at create).
    defaults = [
        {"ParameterKey": k, "ParameterValue": str(p.get("Default", ""))} for k, p in template["Parameters"].items()
    ]
    c["cloudformation"].create_stack(
        StackName=STACK, TemplateBody=json.dumps(template), Parameters=defaults, Capabilities=["CAPABILITY_NAMED_IAM"]
    )

    # --- the registry: two approved versions, each with its test split --------------------------
    c["sagemaker"].create_model_package_group(ModelPackageGroupName=GROUP)
    test_csv = "\n".join(SAMPLE.read_text().splitlines()[:60]) + "\n"
    versions = []
    for number in (1, 2):
        key = f"mlops-dev-model-build/run-{number}/test"
        c["s3"].put_object(Bucket=ARTIFACTS, Key=f"{key}/test.csv", Body=test_csv.encode())
        base = f"s3://{ARTIFACTS}/mlops-dev-model-build/run-{number}"
        arn = c["sagemaker"].create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops-dev/inference:abc",
                        "ModelDataUrl": f"{base}/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"{base}/evaluation.json"}},
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"{base}/statistics.json"},
                    "Constraints": {"ContentType": "application/json", "S3Uri": f"{base}/constraints.json"},
                },
            },
            CustomerMetadataProperties={
                "test_data_uri": f"s3://{ARTIFACTS}/{key}",
                "target": "rings",
                "problem_type": "regression",
            },
        )["ModelPackageArn"]
        versions.append(Version.of(arn))

    # --- the deploy's own resources --------------------------------------------------------------
    c["dynamodb"].create_table(
        TableName="mlops-dev-deploy-approvals",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic = c["sns"].create_topic(Name="mlops-dev-deploy")["TopicArn"]
    queue_url = c["sqs"].create_queue(QueueName="deploy-notifications")["QueueUrl"]
    queue_arn = c["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    c["stepfunctions"].create_state_machine(
        name="mlops-dev-deploy",
        definition=json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-dev-deploy",
    )
    settings = Settings.model_validate(
        {
            "TOPIC_ARN": topic,
            "TABLE_NAME": "mlops-dev-deploy-approvals",
            "MODEL_PACKAGE_GROUP": GROUP,
            "STATE_MACHINE_ARN": STATE_MACHINE,
            "STAGES": json.dumps(
                [
                    {
                        "name": "staging",
                        "name_prefix": "mlops-staging",
                        "region": REGION,
                        "stack_name": STACK,
                        "endpoint_name": "mlops-staging-endpoint",
                        "deployer_role_arn": f"arn:aws:iam::{ACCOUNT}:role/mlops-staging-endpoint-deployer",
                        "cloudformation_role_arn": f"arn:aws:iam::{ACCOUNT}:role/mlops-staging-endpoint-cloudformation",
                        "approval": False,
                        "smoke_rows": 10,
                        "smoke_p95_ms": 5000,
                        "kind": "instance",
                    },
                    {
                        "name": "prod",
                        "name_prefix": "mlops-prod",
                        "region": REGION,
                        "stack_name": "mlops-prod-endpoint",
                        "endpoint_name": "mlops-prod-endpoint",
                        "deployer_role_arn": f"arn:aws:iam::{ACCOUNT}:role/mlops-prod-endpoint-deployer",
                        "cloudformation_role_arn": f"arn:aws:iam::{ACCOUNT}:role/mlops-prod-endpoint-cloudformation",
                        "approval": True,
                        "smoke_rows": 10,
                        "smoke_p95_ms": 5000,
                        "kind": "instance",
                    },
                ]
            ),
        }
    )
    world = World(endpoint, c, settings, LocalRuntime(), queue_url, versions)
    return world


def make_task(
    world: World, name: str, version: Version, *, target: Version | None = None, restoring: bool = False, **extra: Any
) -> Task:
    plan = Plan(
        deploy_id="abc123",
        version=version,
        reason="approved",
        event_id="evt",
        stages=[PlannedStage(name="staging", approval=False), PlannedStage(name="prod", approval=True)],
    )
    return Task(
        task=name,
        plan=plan,
        stage=PlannedStage(name="staging", approval=False),
        target=target or version,
        restoring=restoring,
        execution_arn=extra.pop("execution_arn", f"{STATE_MACHINE.replace('stateMachine', 'execution')}:x"),
        **extra,
    )


def deploy_to_staging(world: World, version: Version) -> dict[str, Any]:
    deployer = world.deployer()
    assert deployer.run(make_task(world, "update", version))["state"] == "started"
    assert deployer.run(make_task(world, "status", version))["state"] == "complete"
    return deployer.run(make_task(world, "verify", version))
