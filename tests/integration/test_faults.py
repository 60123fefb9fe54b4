"""The fault injector itself (tests/integration/faults.py): botocore reads its errors as AWS's and retries them.

Against the moto server, through real clients: one service per wire protocol botocore speaks.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from tests.integration.conftest import aws_client
from tests.integration.faults import (
    FaultInjector,
    capped_backoff,
    connect_timeout,
    error,
    lost_response,
    read_timeout,
    server_error,
    throttling,
)

STANDARD = Config(retries={"mode": "standard", "total_max_attempts": 3})  # 3 attempts in all

# (service, protocol, a read-only call moto answers, its botocore operation name, that service's throttling code)
PROTOCOLS = [
    ("sagemaker", "json", lambda c: c.list_model_package_groups(), "ListModelPackageGroups", "ThrottlingException"),
    ("sqs", "json", lambda c: c.list_queues(), "ListQueues", "RequestThrottled"),  # awsQueryCompatible
    ("sns", "query", lambda c: c.list_topics(), "ListTopics", "Throttling"),
    ("s3", "rest-xml", lambda c: c.list_buckets(), "ListBuckets", "SlowDown"),
    ("cloudwatch", "json", lambda c: c.list_metrics(), "ListMetrics", "Throttling"),  # awsQueryCompatible
    (
        "sagemaker-runtime",
        "rest-json",
        lambda c: c.invoke_endpoint(EndpointName="e", Body=b"1"),
        "InvokeEndpoint",
        "ThrottlingException",
    ),
]


def _client(service: str, endpoint: str, config: Config = STANDARD) -> Any:
    return aws_client(service, endpoint, config=config)


@pytest.mark.parametrize(("service", "protocol", "call", "operation", "throttle"), PROTOCOLS)
def test_an_injected_error_is_parsed_as_the_services_own(moto_endpoint, service, protocol, call, operation, throttle):
    client = _client(service, moto_endpoint)
    assert client.meta.service_model.resolved_protocol == protocol
    with FaultInjector(client) as faults:
        faults.add(operation, error("AccessDeniedException", 403, "not allowed here"))
        with pytest.raises(ClientError) as excinfo:
            call(client)
    assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert faults.attempts[operation] == 1  # not retryable: one attempt


@pytest.mark.parametrize(("service", "protocol", "call", "operation", "throttle"), PROTOCOLS)
def test_throttling_and_5xx_are_retried_by_botocore_then_the_server_answers(
    moto_endpoint, service, protocol, call, operation, throttle
):
    client = _client(service, moto_endpoint)
    with FaultInjector(client) as faults, capped_backoff() as delays:
        faults.add(operation, throttling(throttle), server_error(503))
        call(client)  # the third attempt reaches moto
    assert faults.attempts[operation] == 3
    assert [f.status for _, f in faults.injected] == [400, 503]
    assert len(delays) == 2 and all(d >= 0 for d in delays)


def test_retries_stop_at_max_attempts_with_the_last_error(moto_endpoint) -> None:
    client = _client("sagemaker", moto_endpoint)
    with FaultInjector(client) as faults, capped_backoff():
        faults.always("ListModelPackageGroups", server_error(500))
        with pytest.raises(ClientError, match="InternalFailure"):
            client.list_model_package_groups()
    assert faults.attempts["ListModelPackageGroups"] == 3


@pytest.mark.parametrize(
    ("fault", "raised"), [(connect_timeout(), ConnectTimeoutError), (read_timeout(), ReadTimeoutError)]
)
def test_timeouts_are_retried_and_then_raised(moto_endpoint, fault, raised) -> None:
    client = _client("sagemaker", moto_endpoint)
    with FaultInjector(client) as faults, capped_backoff():
        faults.always("ListModelPackageGroups", fault)
        with pytest.raises(raised):
            client.list_model_package_groups()
    assert faults.attempts["ListModelPackageGroups"] == 3


def test_a_lost_response_reached_the_server_so_botocores_retry_repeats_the_action(moto_endpoint) -> None:
    sqs = _client("sqs", moto_endpoint)
    queue = sqs.create_queue(QueueName=f"lost-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    with FaultInjector(sqs) as faults, capped_backoff():
        faults.add("SendMessage", lost_response())
        sqs.send_message(QueueUrl=queue, MessageBody="once")
    # Both attempts arrived: SendMessage is not idempotent, and this is the fault that shows it.
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "2"
    assert [json.loads(r.body)["MessageBody"] for r in faults.requests["SendMessage"]] == ["once", "once"]


def test_the_wildcard_and_clear_and_close(moto_endpoint) -> None:
    client = _client("sagemaker", moto_endpoint, Config(retries={"mode": "standard", "total_max_attempts": 1}))
    faults = FaultInjector(client)
    faults.always("*", error("ValidationException"))
    with pytest.raises(ClientError):
        client.list_model_package_groups()
    with pytest.raises(ClientError):
        client.list_pipelines()
    faults.clear()
    client.list_pipelines()
    faults.always("*", error("ValidationException"))
    faults.close()
    client.list_pipelines()  # unhooked: nothing injected, nothing counted
    assert faults.attempts == {"ListModelPackageGroups": 1, "ListPipelines": 2}
