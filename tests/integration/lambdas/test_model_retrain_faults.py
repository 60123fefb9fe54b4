"""The retrain function under AWS faults: injected in front of the moto server on the handler's own clients.

Faults come from tests/integration/faults.py: each answers one attempt at botocore's ``before-send``,
so the handler's real client configuration (standard retry mode, ``BOTO_CONFIG``) decides what is
retried. Resources that vanish are deleted for real on the moto server. Every test then checks what
AWS would hold afterwards: the pipeline's executions, the notifications (read back from SQS), and
that a rerun of the same event (what Lambda does after an error) finishes the job without a
second retrain or a lost notification.

Not exercised offline: SageMaker deduplicating a StartPipelineExecution retried with the same
``ClientRequestToken`` after its answer was lost (moto ignores the token); the test checks that
every attempt carries the same token instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from model_retrain import handler
from model_retrain.retrain import RetrainError

from tests.integration.faults import (
    Fault,
    FaultInjector,
    capped_backoff,
    connect_timeout,
    error,
    lost_response,
    read_timeout,
    server_error,
    throttling,
)
from tests.integration.lambdas import test_model_retrain as base
from tests.integration.lambdas.conftest import LambdaContextStandIn
from tests.integration.lambdas.test_model_retrain import World, alarm_event, context

world = base.world  # the same fixtures: a pipeline, a model package, a check's reports folder, a table, a topic
lambda_env = base.lambda_env

# The handler's clients: BOTO_CONFIG's standard mode with max_attempts 5 is 6 attempts in all.
ATTEMPTS = handler.BOTO_CONFIG.retries["max_attempts"] + 1


@pytest.fixture
def faults(lambda_env: World) -> Iterator[dict[str, FaultInjector]]:
    """An injector on each client the handler built (sagemaker, dynamodb, sns, s3), botocore's sleeps capped."""
    worker = handler.retrainer()
    injectors = {name: FaultInjector(getattr(worker, name)) for name in ("sagemaker", "dynamodb", "sns", "s3")}
    with capped_backoff():
        yield injectors
    for injector in injectors.values():
        injector.close()


def _invoke(event: dict, request_id: str = "request-1") -> dict[str, str]:
    return handler.lambda_handler(
        event, LambdaContextStandIn(function_name="mlops-dev-model-retrain", aws_request_id=request_id)
    )


def _alarm(world: World, *, alarm: str = "mlops-dev-monitoring-drift", check: str = "data-quality") -> dict:
    """An alarm state change carrying its monitoring context, as the alarms stacks/monitoring creates send it."""
    return alarm_event(world.model_endpoint, alarm=alarm, description=context(world, check=check))


def _newest_violations(world: World) -> str:
    return f"{world.reports}2026/11/23/10/constraint_violations.json"  # the newer of the fixture's two reports


def _arns(world: World) -> set[str]:
    return {e["PipelineExecutionArn"] for e in world.executions()}


def _token(request: Any) -> str:
    return json.loads(request.body)["ClientRequestToken"]


# --- retryable faults on every call the function makes: retried, one retrain, one notification ----------

# The model version comes from the alarm's context, not from AWS (no DescribeEndpoint any more); the one read
# left is the listing of the check's reports folder, which gets every kind of fault.
RETRYABLE = [
    ("dynamodb", "PutItem", [throttling("ProvisionedThroughputExceededException"), server_error(500)]),
    ("s3", "ListObjectsV2", [server_error(503, "SlowDown"), read_timeout(), connect_timeout(), server_error(500)]),
    ("sagemaker", "StartPipelineExecution", [throttling(), server_error(500), read_timeout(), connect_timeout()]),
    ("dynamodb", "UpdateItem", [server_error(500), throttling("ThrottlingException")]),
    ("sns", "Publish", [throttling("Throttling"), server_error(503), connect_timeout()]),
]


@pytest.mark.parametrize(("client", "operation", "injected"), RETRYABLE, ids=[r[1] for r in RETRYABLE])
def test_retryable_faults_are_retried_and_the_retrain_happens_once(
    lambda_env: World, faults: dict[str, FaultInjector], client: str, operation: str, injected: list[Fault]
) -> None:
    world = lambda_env
    before = len(world.executions())
    # Given AWS answering the first attempts of one call with throttling, 5xx or timeouts
    faults[client].add(operation, *injected)
    # When an alarm arrives
    decision = _invoke(_alarm(world))
    # Then botocore retried through them, and the job was done exactly once
    assert faults[client].attempts[operation] == len(injected) + 1
    assert decision["action"] == "started"
    assert len(world.executions()) == before + 1
    assert [(n["action"], n["execution_arn"]) for n in world.notifications()] == [
        ("started", decision["execution_arn"])
    ]
    assert f"model {world.package_arn}" in decision["reason"]  # the lineage, from the alarm's context
    assert f"violations {_newest_violations(world)}" in decision["reason"]  # the listing recovered
    # Only the check's reports folder was listed, on every attempt.
    prefix = world.reports.removeprefix("s3://").partition("/")[2]
    assert all(f"prefix={quote(prefix, safe='')}" in r.url for r in faults["s3"].requests["ListObjectsV2"])
    assert set(faults["sagemaker"].attempts) == {"StartPipelineExecution"}  # the endpoint is never looked up


# --- errors that are not retryable, and retries exhausted: a clear failure, then a rerun finishes ----------


@pytest.mark.parametrize(
    "fault",
    [
        error("AccessDeniedException", 400, "not authorized to perform sagemaker:StartPipelineExecution"),
        error("ValidationException", 400, "PipelineParameters: unknown parameter"),
        error("ResourceLimitExceeded", 400, "too many executions"),
    ],
    ids=lambda f: f.code,
)
def test_an_error_that_is_not_retryable_fails_at_once_and_the_rerun_retrains_once(
    lambda_env: World, faults: dict[str, FaultInjector], fault: Fault
) -> None:
    world = lambda_env
    before = len(world.executions())
    event = _alarm(world)
    faults["sagemaker"].add("StartPipelineExecution", fault)
    with pytest.raises(RetrainError, match=f"retrain failed to start: .*{fault.code}"):
        _invoke(event)
    assert faults["sagemaker"].attempts["StartPipelineExecution"] == 1  # no retry of a client error
    assert len(world.executions()) == before
    # When Lambda retries the same event and AWS now accepts it
    decision = _invoke(event, "request-2")
    # Then one retrain, and both outcomes were notified in order
    assert decision["action"] == "started"
    assert len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["start_failed", "started"]


def test_5xx_on_every_attempt_stops_after_the_clients_attempts_and_releases_the_cooldown(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    world = lambda_env
    before = len(world.executions())
    faults["sagemaker"].always("StartPipelineExecution", server_error(500))
    with pytest.raises(RetrainError, match="InternalFailure"):
        _invoke(_alarm(world))
    assert faults["sagemaker"].attempts["StartPipelineExecution"] == ATTEMPTS
    faults["sagemaker"].clear()
    # Another alarm (a different event) is not blocked by a cooldown nobody used
    assert _invoke(_alarm(world, alarm="mlops-dev-quality-rmse", check="model-quality"))["action"] == "started"
    assert len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["start_failed", "started"]


def test_a_start_that_times_out_on_every_attempt_is_a_notified_failure_not_a_held_cooldown(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    # Regression: a timeout (a BotoCoreError, not a ClientError) used to escape without releasing the
    # cooldown or notifying: the next alarm was then skipped for 24 h although nothing had started.
    world = lambda_env
    faults["sagemaker"].always("StartPipelineExecution", read_timeout())
    with pytest.raises(RetrainError, match="retrain failed to start: Read timeout"):
        _invoke(_alarm(world))
    assert faults["sagemaker"].attempts["StartPipelineExecution"] == ATTEMPTS
    (note,) = world.notifications()
    assert note["action"] == "start_failed" and note["subject"] == "Retrain FAILED to start"
    faults["sagemaker"].clear()
    assert _invoke(_alarm(world, alarm="mlops-dev-quality-rmse", check="model-quality"))["action"] == "started"


# --- answers lost after AWS acted: botocore's retry must not turn into a skip or a duplicate ---------------


def test_a_lost_answer_to_the_cooldown_write_does_not_skip_the_retrain(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    # Regression: the conditional write succeeded, its answer was lost, botocore's retry then failed the
    # condition against its own write, and the alarm was reported as 'skipped_cooldown' with no retrain.
    world = lambda_env
    before = len(world.executions())
    faults["dynamodb"].add("PutItem", lost_response())
    decision = _invoke(_alarm(world))
    assert faults["dynamodb"].attempts["PutItem"] == 2
    assert decision["action"] == "started"
    assert len(world.executions()) == before + 1


def test_a_lost_answer_to_the_start_is_retried_with_the_same_idempotency_token(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    world = lambda_env
    event = _alarm(world)
    faults["sagemaker"].add("StartPipelineExecution", lost_response())
    assert _invoke(event)["action"] == "started"
    attempts = faults["sagemaker"].requests["StartPipelineExecution"]
    # SageMaker starts at most one execution per token; moto does not check, so the token is what is checked.
    assert len(attempts) == 2 and {_token(r) for r in attempts} == {event["id"][:128].ljust(32, "0")}


def test_a_notification_that_fails_after_the_start_is_sent_by_the_rerun_without_a_second_retrain(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    # Regression: the rerun found its own cooldown taken and notified 'skipped_cooldown': the
    # 'started' notification was lost. Now it finds the execution it started and notifies that.
    world = lambda_env
    before = _arns(world)
    event = _alarm(world)
    faults["sns"].always("Publish", server_error(500))
    with pytest.raises(ClientError, match="InternalFailure"):
        _invoke(event)
    assert faults["sns"].attempts["Publish"] == ATTEMPTS
    (started,) = _arns(world) - before
    faults["sns"].clear()
    decision = _invoke(event, "request-2")  # Lambda's retry of the failed invocation
    assert decision == {**decision, "action": "started", "execution_arn": started}
    assert _arns(world) - before == {started}
    assert faults["sagemaker"].attempts["StartPipelineExecution"] == 1
    assert [(n["action"], n["execution_arn"]) for n in world.notifications()] == [("started", started)]


# --- resources that vanished (deleted for real on the moto server) ------------------------------------------


def test_a_pipeline_that_vanished_fails_once_clearly_and_the_rerun_retrains_after_it_is_back(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    world = lambda_env
    pipeline = world.settings.pipeline_name  # the World's own build pipeline (its name carries the test's tag)
    definition = world.sagemaker.describe_pipeline(PipelineName=pipeline)
    world.sagemaker.delete_pipeline(PipelineName=pipeline, ClientRequestToken="delete-" + "0" * 25)
    event = _alarm(world)
    try:
        with pytest.raises(RetrainError, match=f"Could not find pipeline with PipelineName {pipeline}"):
            _invoke(event)
        assert faults["sagemaker"].attempts["StartPipelineExecution"] == 1
        assert [n["action"] for n in world.notifications()] == ["start_failed"]
    finally:
        world.sagemaker.create_pipeline(
            PipelineName=pipeline, PipelineDefinition=definition["PipelineDefinition"], RoleArn=definition["RoleArn"]
        )
    decision = _invoke(event, "request-2")
    assert decision["action"] == "started" and len(world.executions()) == 1
    assert [n["action"] for n in world.notifications()] == ["started"]


def test_a_topic_that_vanished_fails_the_invocation_and_the_rerun_notifies_the_one_retrain(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    world = lambda_env
    before = len(world.executions())
    event = _alarm(world)
    world.sns.delete_topic(TopicArn=world.settings.topic_arn)
    with pytest.raises(ClientError) as excinfo:
        _invoke(event)
    assert excinfo.value.response["Error"]["Code"] == "NotFound"
    assert faults["sns"].attempts["Publish"] == 1  # not retried
    name = world.settings.topic_arn.rsplit(":", 1)[1]
    assert world.sns.create_topic(Name=name)["TopicArn"] == world.settings.topic_arn
    sqs = base.aws_client("sqs", world.endpoint)
    queue_arn = sqs.get_queue_attributes(QueueUrl=world.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    world.sns.subscribe(TopicArn=world.settings.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    decision = _invoke(event, "request-2")
    assert decision["action"] == "started" and len(world.executions()) == before + 1
    assert [n["action"] for n in world.notifications()] == ["started"]


def test_a_table_that_vanished_fails_clearly_before_anything_is_started(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    world = lambda_env
    before = len(world.executions())
    world.dynamodb.delete_table(TableName=world.settings.table_name)
    # The retrain itself (in the handler, Powertools' idempotency store, the same table, fails first).
    with pytest.raises(ClientError) as excinfo:
        handler.process(_alarm(world), handler.retrainer())
    assert excinfo.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert faults["dynamodb"].attempts["PutItem"] == 1
    assert len(world.executions()) == before and world.notifications() == []


def test_a_reports_bucket_that_vanished_still_retrains_and_says_the_folder_was_not_listed(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    # The endpoint itself does not exist on the server: the function never looks it up (the version and
    # the reports folder come from the alarm's context), so only the bucket can vanish under it.
    world = lambda_env
    bucket = world.reports.removeprefix("s3://").partition("/")[0]
    for item in world.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        world.s3.delete_object(Bucket=bucket, Key=item["Key"])
    world.s3.delete_bucket(Bucket=bucket)
    decision = _invoke(_alarm(world))
    assert decision["action"] == "started" and len(world.executions()) == 1
    assert f"model {world.package_arn}" in decision["reason"]  # still known: it is in the context
    assert f"violations {world.reports} (not listed: NoSuchBucket)" in decision["reason"]
    assert faults["s3"].attempts["ListObjectsV2"] == 1  # a missing bucket is not retried
    assert set(faults["sagemaker"].attempts) == {"StartPipelineExecution"}
    assert [(n["action"], n["execution_arn"]) for n in world.notifications()] == [
        ("started", decision["execution_arn"])
    ]


def test_a_failed_monitoring_run_is_notified_through_throttling(
    lambda_env: World, faults: dict[str, FaultInjector]
) -> None:
    world = lambda_env
    event = {
        "version": "0",
        "id": "5f0c6e3e-1111-2222-3333-444455556666",
        "detail-type": "SageMaker Processing Job State Change",
        "source": "aws.sagemaker",
        "account": base.ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"ProcessingJobName": "mlops-dev-monitor-1", "ProcessingJobStatus": "Failed"},
    }
    faults["sns"].add("Publish", throttling("Throttling"), throttling("Throttling"))
    assert _invoke(event)["action"] == "monitoring_failed"
    assert faults["sns"].attempts["Publish"] == 3
    assert [n["action"] for n in world.notifications()] == ["monitoring_failed"]
