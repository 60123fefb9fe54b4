"""The retrain function through boto3 against a moto server on 127.0.0.1: SageMaker, DynamoDB, SNS, S3.

Events have the shapes EventBridge delivers ("CloudWatch Alarm State Change", "SageMaker
Processing Job State Change"). moto implements every call the function makes; AWS errors
(throttling, 5xx) are injected at the botocore level on the real client (tests/integration/faults.py),
so the client's own retry configuration is what recovers from them; test_model_retrain_faults.py has
the rest (timeouts, lost answers, vanished resources, reruns). Notifications are read back from an SQS queue
subscribed to the topic.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_retrain import handler
from model_retrain.events import AlarmStateChange, Settings
from model_retrain.retrain import Retrainer, RetrainError

from tests.integration.conftest import REGION, aws_client
from tests.integration.faults import FaultInjector, capped_backoff, server_error, throttling

ENDPOINT = "mlops-dev-endpoint"
PIPELINE = "mlops-dev-model-build"
ACCOUNT = "123456789012"  # moto's default account


def _client(service: str, endpoint: str, **kwargs: Any) -> Any:
    return aws_client(service, endpoint, **kwargs)


@dataclass
class World:
    endpoint: str  # the moto server
    model_endpoint: str  # the SageMaker endpoint the alarms are about
    settings: Settings
    sagemaker: Any
    dynamodb: Any
    sns: Any
    s3: Any
    queue_url: str
    package_arn: str

    def retrainer(self, clock: float = 1_800_000_000.0, sagemaker: Any = None) -> Retrainer:
        return Retrainer(
            self.settings,
            sagemaker=sagemaker or self.sagemaker,
            dynamodb=self.dynamodb,
            sns=self.sns,
            s3=self.s3,
            clock=lambda: clock,
        )

    def executions(self) -> list[dict]:
        return self.sagemaker.list_pipeline_executions(PipelineName=PIPELINE)["PipelineExecutionSummaries"]

    def notifications(self) -> list[dict]:
        sqs = _client("sqs", self.endpoint)
        out = []
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                envelope = json.loads(message["Body"])
                out.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return out


@pytest.fixture
def world(moto_endpoint: str) -> Iterator[World]:
    """A pipeline, an endpoint serving a registered model package, a violations file, a table and a topic."""
    tag = uuid.uuid4().hex[:8]
    sagemaker, dynamodb = _client("sagemaker", moto_endpoint), _client("dynamodb", moto_endpoint)
    sns, s3, sqs = _client("sns", moto_endpoint), _client("s3", moto_endpoint), _client("sqs", moto_endpoint)
    role = f"arn:aws:iam::{ACCOUNT}:role/pipeline"
    with contextlib.suppress(sagemaker.exceptions.ClientError):  # created by an earlier test on this server
        sagemaker.create_pipeline(PipelineName=PIPELINE, PipelineDefinition=json.dumps({"Steps": []}), RoleArn=role)
    group = f"models-{tag}"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    package = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        InferenceSpecification={
            "Containers": [{"Image": "inference:sha-1", "ModelDataUrl": "s3://artifacts/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    endpoint = f"{ENDPOINT}-{tag}"
    sagemaker.create_model(
        ModelName=f"model-{tag}", PrimaryContainer={"ModelPackageName": package}, ExecutionRoleArn=role
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"config-{tag}",
        ProductionVariants=[
            {
                "VariantName": "live",
                "ModelName": f"model-{tag}",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"config-{tag}")
    table = f"retrain-{tag}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bucket = f"monitoring-{tag}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    violations = f"{endpoint}/data-quality/2026/11/23/10/constraint_violations.json"
    s3.put_object(Bucket=bucket, Key=violations, Body=b'{"violations": []}')
    topic = sns.create_topic(Name=f"retrain-{tag}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"notes-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    config = Settings.model_validate(
        {
            "PIPELINE_NAME": PIPELINE,
            "TOPIC_ARN": topic,
            "TABLE_NAME": table,
            "COOLDOWN_HOURS": "24",
            "MONITORING_BUCKET": bucket,
        }
    )
    yield World(moto_endpoint, endpoint, config, sagemaker, dynamodb, sns, s3, queue_url, package)


def alarm_event(
    endpoint: str, *, state: str = "ALARM", alarm: str = "mlops-dev-drift-length", event_id: str = ""
) -> dict:
    """An alarm state change as EventBridge delivers it (metric alarm on one endpoint's drift metric)."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT,
        "time": "2026-11-23T10:05:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm}"],
        "detail": {
            "alarmName": alarm,
            "state": {
                "value": state,
                "reason": "Threshold Crossed: 1 datapoint [0.31] was greater than the threshold (0.1).",
                "timestamp": "2026-11-23T10:05:00.000+0000",
            },
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-23T09:05:00.000+0000"},
            "configuration": {
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": "AWS-MLOps/Monitoring",
                                "name": "feature_baseline_drift_length",
                                "dimensions": {"EndpointName": endpoint, "MonitoringSchedule": "data-quality"},
                            },
                            "period": 3600,
                            "stat": "Maximum",
                        },
                        "returnData": True,
                    }
                ]
            },
        },
    }


def test_an_alarm_starts_one_retrain_that_records_why(world: World) -> None:
    decision = world.retrainer().on_alarm(_parse(alarm_event(world.model_endpoint)))
    assert decision.action == "started"
    assert decision.execution_arn in [e["PipelineExecutionArn"] for e in world.executions()]
    described = world.sagemaker.describe_pipeline_execution(PipelineExecutionArn=decision.execution_arn)
    description = described["PipelineExecutionDescription"]
    assert "alarm mlops-dev-drift-length" in description
    assert f"model {world.package_arn}" in description
    assert f"s3://{world.settings.monitoring_bucket}/" in description and "constraint_violations.json" in description
    (note,) = world.notifications()
    assert note["action"] == "started" and note["execution_arn"] == decision.execution_arn


def _endpoint(world: World) -> str:
    return world.model_endpoint


def _parse(event: dict) -> AlarmStateChange:
    return AlarmStateChange.model_validate(event)


def test_alarms_within_the_cooldown_start_nothing_more_and_say_so(world: World) -> None:
    endpoint = _endpoint(world)
    before = len(world.executions())
    first = world.retrainer().on_alarm(_parse(alarm_event(endpoint)))
    second = world.retrainer(clock=1_800_000_000.0 + 3600).on_alarm(
        _parse(alarm_event(endpoint, alarm="mlops-dev-quality-rmse"))
    )
    assert (first.action, second.action) == ("started", "skipped_cooldown")
    assert len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["started", "skipped_cooldown"]
    # After the cooldown, the next alarm retrains again.
    third = world.retrainer(clock=1_800_000_000.0 + 25 * 3600).on_alarm(_parse(alarm_event(endpoint)))
    assert third.action == "started" and len(world.executions()) == before + 2


def test_alarms_on_different_endpoints_each_retrain(world: World) -> None:
    one = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world))))
    other = world.retrainer().on_alarm(_parse(alarm_event("another-endpoint")))
    assert (one.action, other.action) == ("started", "started")
    assert "model unknown" in other.reason  # no such endpoint: the lineage says so instead of guessing


def test_an_alarm_back_to_ok_is_ignored_without_a_notification(world: World) -> None:
    before = len(world.executions())
    decision = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), state="OK")))
    assert decision.action == "ignored"
    assert len(world.executions()) == before and world.notifications() == []


def test_throttling_and_server_errors_are_retried_by_the_client(world: World) -> None:
    sagemaker = _client("sagemaker", world.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    before = len(world.executions())
    with FaultInjector(sagemaker) as faults, capped_backoff():
        faults.add("StartPipelineExecution", throttling(), server_error(500), server_error(503))
        decision = world.retrainer(sagemaker=sagemaker).on_alarm(_parse(alarm_event(_endpoint(world))))
    assert decision.action == "started"
    # A throttle and two server errors, retried; the fourth attempt reaches moto: one execution.
    assert faults.attempts["StartPipelineExecution"] == 4
    assert len(world.executions()) == before + 1


def test_a_start_that_keeps_failing_releases_the_cooldown_and_notifies(world: World) -> None:
    endpoint = _endpoint(world)
    sagemaker = _client("sagemaker", world.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 2}))
    with FaultInjector(sagemaker) as faults, capped_backoff():
        faults.always("StartPipelineExecution", server_error(500))
        with pytest.raises(RetrainError, match="retrain failed to start"):
            world.retrainer(sagemaker=sagemaker).on_alarm(_parse(alarm_event(endpoint)))
    (note,) = world.notifications()
    assert note["subject"] == "Retrain FAILED to start" and note["action"] == "start_failed"
    # The cooldown was released: the retry (or the next alarm) starts the retrain.
    assert world.retrainer().on_alarm(_parse(alarm_event(endpoint))).action == "started"


def test_a_failed_monitoring_run_notifies_and_never_retrains(world: World) -> None:
    from model_retrain.events import ProcessingJobStateChange

    before = len(world.executions())
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Processing Job State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "ProcessingJobName": "mlops-dev-monitor-2026112310",
            "ProcessingJobStatus": "Failed",
            "FailureReason": "AlgorithmError: data capture prefix is empty",
        },
    }
    decision = world.retrainer().on_monitoring_job(ProcessingJobStateChange.model_validate(event))
    assert decision.action == "monitoring_failed" and "data capture prefix is empty" in decision.reason
    assert len(world.executions()) == before
    assert [n["action"] for n in world.notifications()] == ["monitoring_failed"]


# --- the Lambda handler: parsing, idempotency on redelivery -----------------------------------------


@dataclass
class FakeContext:
    function_name: str = "mlops-dev-model-retrain"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-dev-model-retrain"
    aws_request_id: str = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {
        "PIPELINE_NAME": PIPELINE,
        "TOPIC_ARN": world.settings.topic_arn,
        "TABLE_NAME": world.settings.table_name,
        "MONITORING_BUCKET": world.settings.monitoring_bucket,
        "AWS_ENDPOINT_URL": world.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "AWS-MLOps",
    }.items():
        monkeypatch.setenv(name, value)
    for cached in (handler.settings, handler.retrainer, handler.idempotency):
        cached.cache_clear()
    yield world
    for cached in (handler.settings, handler.retrainer, handler.idempotency):
        cached.cache_clear()


def test_a_redelivered_event_is_answered_without_acting_twice(lambda_env: World) -> None:
    world = lambda_env
    event = alarm_event(_endpoint(world))
    before = len(world.executions())
    first = handler.lambda_handler(event, FakeContext())
    again = handler.lambda_handler(event, FakeContext(aws_request_id="request-2"))
    assert first == again and first["action"] == "started"
    assert len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["started"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.update({"detail-type": "Something Else"}), "unsupported detail-type 'Something Else'"),
        (lambda e: e["detail"].pop("alarmName"), "detail.alarmName: Field required"),
        (lambda e: e["detail"]["state"].update({"value": "PANIC"}), "detail.state.value"),
        (lambda e: e.update({"source": "aws.ec2"}), "source"),
    ],
)
def test_a_malformed_event_fails_with_the_field_named(lambda_env: World, mutate, message: str) -> None:
    event = alarm_event(_endpoint(lambda_env))
    mutate(event)
    with pytest.raises(handler.UnsupportedEvent, match=message.replace("(", r"\(").replace(")", r"\)")):
        handler.process(event, lambda_env.retrainer())
    assert lambda_env.notifications() == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.none(),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(
            st.sampled_from(["detail-type", "source", "id", "detail", "time", "region", "account", "version"]),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                max_leaves=8,
            )
            | st.sampled_from(["CloudWatch Alarm State Change", "SageMaker Processing Job State Change"]),
        ),
    )
)
def test_any_event_either_gets_a_decision_or_a_named_error(world: World, event: Any) -> None:
    try:
        decision = handler.process(event, world.retrainer())
    except handler.UnsupportedEvent as exc:
        assert str(exc)
    else:
        assert decision["action"] in {"started", "skipped_cooldown", "ignored", "monitoring_failed"}
