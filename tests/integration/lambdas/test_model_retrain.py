"""The retrain function through boto3 against a moto server on 127.0.0.1: SageMaker, DynamoDB, SNS, S3.

Events have the shapes EventBridge delivers ("CloudWatch Alarm State Change", "SageMaker
Processing Job State Change"). moto implements every call the function makes; AWS errors
(throttling, 5xx) are injected at the botocore level on the real client (tests/integration/faults.py),
so the client's own retry configuration is what recovers from them; test_model_retrain_faults.py has
the rest (timeouts, lost answers, vanished resources, reruns). Notifications are read back from an SQS queue
subscribed to the topic.
"""

from __future__ import annotations

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
from model_retrain.events import AlarmStateChange, PipelineExecutionStatusChange, Settings
from model_retrain.retrain import Retrainer, RetrainError

from tests.integration.conftest import REGION, aws_client
from tests.integration.faults import FaultInjector, capped_backoff, error, server_error, throttling
from tests.integration.lambdas.conftest import LambdaContextStandIn, set_environment

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
    reports: str  # the check's reports folder, as the alarm's context names it

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
        pipeline = self.settings.pipeline_name
        return self.sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]

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
    """A pipeline, a registered model package, an endpoint's reports with a violations file, a table and a topic."""
    tag = uuid.uuid4().hex[:8]
    sagemaker, dynamodb = _client("sagemaker", moto_endpoint), _client("dynamodb", moto_endpoint)
    sns, s3, sqs = _client("sns", moto_endpoint), _client("s3", moto_endpoint), _client("sqs", moto_endpoint)
    role = f"arn:aws:iam::{ACCOUNT}:role/pipeline"
    pipeline = f"{PIPELINE}-{tag}"
    sagemaker.create_pipeline(PipelineName=pipeline, PipelineDefinition=json.dumps({"Steps": []}), RoleArn=role)
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
    table = f"retrain-{tag}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    bucket = f"monitoring-{tag}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    reports = f"s3://{bucket}/reports/{endpoint}/mlops-dev-data-quality/"
    for hour in ("09", "10"):  # the newer one is the one recorded
        key = f"reports/{endpoint}/mlops-dev-data-quality/2026/11/23/{hour}/constraint_violations.json"
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"violations": []}')
    topic = sns.create_topic(Name=f"retrain-{tag}")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"notes-{tag}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    config = Settings.model_validate(
        {"PIPELINE_NAME": pipeline, "TOPIC_ARN": topic, "TABLE_NAME": table, "COOLDOWN_HOURS": "24"}
    )
    yield World(moto_endpoint, endpoint, config, sagemaker, dynamodb, sns, s3, queue_url, package, reports)


def context(world: World, *, action: str = "retrain", check: str = "data-quality", endpoint: str = "") -> str:
    """The alarm description stacks/monitoring writes: the monitoring context, as JSON."""
    return json.dumps(
        {
            "endpoint": endpoint or world.model_endpoint,
            "check": check,
            "model_package": world.package_arn,
            "reports": world.reports,
            "action": action,
        }
    )


def alarm_event(
    endpoint: str,
    *,
    state: str = "ALARM",
    alarm: str = "mlops-dev-monitoring-drift",
    event_id: str = "",
    description: str = "",
) -> dict:
    """An alarm state change as EventBridge delivers it (a metric alarm on one endpoint's violation count)."""
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
                "reason": "Threshold Crossed: 1 datapoint [2.0] was greater than or equal to the threshold (1.0).",
                "timestamp": "2026-11-23T10:05:00.000+0000",
            },
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-23T09:05:00.000+0000"},
            "configuration": {
                "description": description,
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": "AWS-MLOps/Monitoring",
                                "name": "baseline_drift_violations",
                                "dimensions": {"Endpoint": endpoint, "MonitoringSchedule": "mlops-dev-data-quality"},
                            },
                            "period": 3600,
                            "stat": "Maximum",
                        },
                        "returnData": True,
                    }
                ],
            },
        },
    }


def test_an_alarm_starts_one_retrain_that_records_why(world: World) -> None:
    event = alarm_event(world.model_endpoint, description=context(world))
    decision = world.retrainer().on_alarm(_parse(event))
    assert decision.action == "started" and decision.model == world.model_endpoint
    assert decision.execution_arn in [e["PipelineExecutionArn"] for e in world.executions()]
    described = world.sagemaker.describe_pipeline_execution(PipelineExecutionArn=decision.execution_arn)
    description = described["PipelineExecutionDescription"]
    assert "alarm mlops-dev-monitoring-drift" in description and "check data-quality" in description
    assert f"model {world.package_arn}" in description
    # The newest report of the alarm's check, found by listing its folder.
    assert f"violations {world.reports}2026/11/23/10/constraint_violations.json" in description
    (note,) = world.notifications()
    assert note["action"] == "started" and note["execution_arn"] == decision.execution_arn


def _endpoint(world: World) -> str:
    return world.model_endpoint


def _parse(event: dict) -> AlarmStateChange:
    return AlarmStateChange.model_validate(event)


def test_alarms_within_the_cooldown_start_nothing_more_and_say_so(world: World) -> None:
    endpoint = _endpoint(world)
    before = len(world.executions())
    first = world.retrainer().on_alarm(_parse(alarm_event(endpoint, description=context(world))))
    second = world.retrainer(clock=1_800_000_000.0 + 3600).on_alarm(
        _parse(
            alarm_event(
                endpoint, alarm="mlops-dev-monitoring-model-quality", description=context(world, check="model-quality")
            )
        )
    )
    assert (first.action, second.action) == ("started", "skipped_cooldown")
    assert len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["started", "skipped_cooldown"]
    # After the cooldown, the next alarm retrains again.
    third = world.retrainer(clock=1_800_000_000.0 + 25 * 3600).on_alarm(
        _parse(alarm_event(endpoint, description=context(world)))
    )
    assert third.action == "started" and len(world.executions()) == before + 2


def test_two_endpoints_of_one_build_drifting_together_start_one_retrain(world: World) -> None:
    # Staging and prod serve versions of the same build: one retrain produces the next version of both.
    staging = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=context(world))))
    prod = world.retrainer().on_alarm(
        _parse(alarm_event("mlops-prod-endpoint", description=context(world, endpoint="mlops-prod-endpoint")))
    )
    assert (staging.action, prod.action) == ("started", "skipped_cooldown")
    assert prod.model == "mlops-prod-endpoint" and len(world.executions()) == 1


def test_a_notify_only_alarm_notifies_and_starts_nothing(world: World) -> None:
    event = alarm_event(
        _endpoint(world), alarm="mlops-dev-monitoring-data-quality", description=context(world, action="notify")
    )
    decision = world.retrainer().on_alarm(_parse(event))
    assert decision.action == "notified" and "notify only" in decision.reason
    assert world.executions() == []
    (note,) = world.notifications()
    assert note["subject"] == "Monitoring alarm: mlops-dev-monitoring-data-quality" and note["action"] == "notified"
    # It took no cooldown: a drift alarm right after still retrains.
    assert world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=context(world)))).action == (
        "started"
    )


def test_reports_it_may_not_list_are_recorded_as_their_folder(world: World) -> None:
    # Multi-account: the reports are in the endpoint's account; S3 refuses the listing.
    foreign = json.loads(context(world)) | {
        "reports": "s3://mlops-staging-monitoring-333333333333-eu-west-1/reports/x/"
    }
    decision = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=json.dumps(foreign))))
    assert decision.action == "started"
    assert "violations s3://mlops-staging-monitoring-333333333333-eu-west-1/reports/x/ (not listed: NoSuchBucket)" in (
        decision.reason
    )


def test_an_alarm_without_a_monitoring_context_still_retrains_and_says_what_is_unknown(world: World) -> None:
    decision = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description="drift on length")))
    assert decision.action == "started"
    assert decision.model == _endpoint(world)  # from the metric's Endpoint dimension
    assert "model unknown" in decision.reason and "no monitoring context" in decision.reason


def test_an_alarm_back_to_ok_is_ignored_without_a_notification(world: World) -> None:
    before = len(world.executions())
    decision = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), state="OK", description=context(world))))
    assert decision.action == "ignored"
    assert len(world.executions()) == before and world.notifications() == []


def test_throttling_and_server_errors_are_retried_by_the_client(world: World) -> None:
    sagemaker = _client("sagemaker", world.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 5}))
    before = len(world.executions())
    with FaultInjector(sagemaker) as faults, capped_backoff():
        faults.add("StartPipelineExecution", throttling(), server_error(500), server_error(503))
        decision = world.retrainer(sagemaker=sagemaker).on_alarm(
            _parse(alarm_event(_endpoint(world), description=context(world)))
        )
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
            world.retrainer(sagemaker=sagemaker).on_alarm(_parse(alarm_event(endpoint, description=context(world))))
    (note,) = world.notifications()
    assert note["subject"] == "Retrain FAILED to start" and note["action"] == "start_failed"
    # The cooldown was released: the retry (or the next alarm) starts the retrain.
    assert world.retrainer().on_alarm(_parse(alarm_event(endpoint, description=context(world)))).action == "started"


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


# --- a retrain that started and then failed ---------------------------------------------------------


def pipeline_event(world: World, execution_arn: str, status: str = "Failed", event_id: str = "") -> dict:
    """A build pipeline's execution status change as EventBridge delivers it."""
    pipeline_arn = execution_arn.split("/execution/")[0]
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-11-23T11:40:00Z",
        "region": REGION,
        "resources": [pipeline_arn, execution_arn],
        "detail": {
            "pipelineExecutionDisplayName": "retrain-1800000000",
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "executionStartTime": "2026-11-23T10:05:01Z",
            "executionEndTime": "2026-11-23T11:40:00Z",
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": execution_arn,
        },
    }


def _on_build(world: World, event: dict, sagemaker: Any = None, clock: float = 1_800_000_000.0 + 5400):
    return world.retrainer(clock=clock, sagemaker=sagemaker).on_pipeline_execution(
        PipelineExecutionStatusChange.model_validate(event)
    )


def test_a_retrain_that_fails_frees_its_cooldown_is_notified_and_the_next_alarm_retrains(world: World) -> None:
    started = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=context(world))))
    decision = _on_build(world, pipeline_event(world, started.execution_arn))
    assert decision.action == "retrain_failed" and decision.execution_arn == started.execution_arn
    # moto's executions carry no failure reason: the one SageMaker gives is read where there is one.
    assert f"the retrain {started.execution_arn} failed: no reason given" in decision.reason
    notes = world.notifications()
    assert [n["action"] for n in notes] == ["started", "retrain_failed"]
    assert notes[1]["subject"] == f"Retrain FAILED: {world.settings.pipeline_name}"
    # Within what was the cooldown, the next alarm retrains again.
    again = world.retrainer(clock=1_800_000_000.0 + 7200).on_alarm(
        _parse(alarm_event(_endpoint(world), description=context(world)))
    )
    assert again.action == "started" and len(world.executions()) == 2


def test_a_rerun_of_the_failure_notifies_again_until_the_next_retrain_takes_the_cooldown(world: World) -> None:
    started = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=context(world))))
    event = pipeline_event(world, started.execution_arn, status="Stopped")
    first, rerun = _on_build(world, event), _on_build(world, event)  # Lambda's retry: the notice was lost
    assert (first.action, rerun.action) == ("retrain_failed", "retrain_failed")
    assert [n["subject"] for n in world.notifications()][1:] == [f"Retrain STOPPED: {world.settings.pipeline_name}"] * 2
    world.retrainer(clock=1_800_000_000.0 + 7200).on_alarm(
        _parse(alarm_event(_endpoint(world), description=context(world)))
    )
    world.notifications()
    # The cooldown is the new retrain's now: the old execution's event frees nothing of it.
    assert _on_build(world, event).action == "ignored" and world.notifications() == []
    skipped = world.retrainer(clock=1_800_000_000.0 + 9000).on_alarm(
        _parse(alarm_event(_endpoint(world), description=context(world)))
    )
    assert skipped.action == "skipped_cooldown"


def test_a_failed_build_no_retrain_started_or_a_succeeded_one_is_ignored_silently(world: World) -> None:
    started = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=context(world))))
    world.notifications()
    pushed = started.execution_arn.split("/execution/")[0] + "/execution/pushbuild0001"
    assert _on_build(world, pipeline_event(world, pushed)).action == "ignored"
    succeeded = _on_build(world, pipeline_event(world, started.execution_arn, status="Succeeded"))
    assert succeeded.action == "ignored" and "is Succeeded" in succeeded.reason
    assert world.notifications() == []
    # The retrain's cooldown still holds.
    second = world.retrainer(clock=1_800_000_000.0 + 3600).on_alarm(
        _parse(alarm_event(_endpoint(world), description=context(world)))
    )
    assert second.action == "skipped_cooldown"


def test_the_failure_is_notified_when_its_reason_cannot_be_read(world: World) -> None:
    started = world.retrainer().on_alarm(_parse(alarm_event(_endpoint(world), description=context(world))))
    sagemaker = _client("sagemaker", world.endpoint)
    with FaultInjector(sagemaker) as faults:
        faults.always("DescribePipelineExecution", error("AccessDeniedException"))
        decision = _on_build(world, pipeline_event(world, started.execution_arn), sagemaker=sagemaker)
    assert decision.action == "retrain_failed" and "no reason read (ClientError)" in decision.reason
    assert [n["action"] for n in world.notifications()] == ["started", "retrain_failed"]


# --- the Lambda handler: parsing, idempotency on redelivery -----------------------------------------


@pytest.fixture
def lambda_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    settings = world.settings
    set_environment(
        monkeypatch,
        world.endpoint,
        {"PIPELINE_NAME": settings.pipeline_name, "TOPIC_ARN": settings.topic_arn, "TABLE_NAME": settings.table_name},
    )
    for cached in (handler.settings, handler.retrainer, handler.idempotency):
        cached.cache_clear()
    yield world
    for cached in (handler.settings, handler.retrainer, handler.idempotency):
        cached.cache_clear()


def test_a_redelivered_event_is_answered_without_acting_twice(lambda_env: World) -> None:
    world = lambda_env
    event = alarm_event(_endpoint(world), description=context(world))
    before = len(world.executions())
    first = handler.lambda_handler(event, LambdaContextStandIn(function_name="mlops-dev-model-retrain"))
    again = handler.lambda_handler(
        event, LambdaContextStandIn(function_name="mlops-dev-model-retrain", aws_request_id="request-2")
    )
    assert first == again and first["action"] == "started"
    assert len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["started"]


def test_the_entry_point_routes_a_failed_build_and_answers_its_redelivery_from_the_record(lambda_env: World) -> None:
    world = lambda_env
    started = handler.lambda_handler(
        alarm_event(_endpoint(world), description=context(world)),
        LambdaContextStandIn(function_name="mlops-dev-model-retrain"),
    )
    event = pipeline_event(world, started["execution_arn"])
    first = handler.lambda_handler(event, LambdaContextStandIn(function_name="mlops-dev-model-retrain"))
    again = handler.lambda_handler(
        event, LambdaContextStandIn(function_name="mlops-dev-model-retrain", aws_request_id="request-2")
    )
    assert first == again and first["action"] == "retrain_failed"
    assert [n["action"] for n in world.notifications()] == ["started", "retrain_failed"]


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
        assert decision["action"] in {"started", "skipped_cooldown", "ignored", "notified", "monitoring_failed"}
