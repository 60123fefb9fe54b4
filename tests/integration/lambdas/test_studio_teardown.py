"""The Studio teardown custom resource, through boto3 against a moto server on 127.0.0.1.

moto implements the domain calls (create, describe, delete), which go over real HTTP.
It does not implement apps, spaces or user profiles: those calls, and only those, go to a
second client with botocore's Stubber. CloudFormation's response URL is a local https
endpoint (a session certificate, trusted through SSL_CERT_FILE), so the response document
is really PUT and read back.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from studio_teardown import cfn_response, handler
from studio_teardown.handler import ResponseNotDelivered, handle, lambda_handler, sagemaker_client
from studio_teardown.teardown import Teardown, TeardownTimeout, UnexpectedListing
from urllib3.util import Timeout

from tests.integration.conftest import REGION, aws_client
from tests.integration.lambdas.conftest import Clock

STUBBED = {"list_apps", "delete_app", "list_spaces", "delete_space", "list_user_profiles", "delete_user_profile"}


class SplitClient:
    """Routes the calls moto lacks to the stubbed client; everything else to the moto server."""

    def __init__(self, real: Any, stubbed: Any) -> None:
        self.real, self.stubbed = real, stubbed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stubbed if name in STUBBED else self.real, name)


@pytest.fixture
def sagemaker(moto_endpoint):
    real = aws_client("sagemaker", moto_endpoint)
    stubbed = aws_client("sagemaker", None)
    with Stubber(stubbed) as stubber:
        yield real, stubber, SplitClient(real, stubbed)
        stubber.assert_no_pending_responses()


def _domain(real: Any, name: str) -> str:
    arn = real.create_domain(
        DomainName=name,
        AuthMode="IAM",
        VpcId="vpc-1",
        SubnetIds=["subnet-1"],
        DefaultUserSettings={"ExecutionRole": "arn:aws:iam::123456789012:role/ds"},
    )["DomainArn"]
    return arn.rsplit("/", 1)[1]


def _event(sink, domain_id: str, request_type: str = "Delete", **props: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:teardown",
        "ResponseURL": sink.url if sink else "https://cloudformation-response.invalid/r",
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/mlops-dev-studio/guid",
        "RequestId": "req-1",
        "LogicalResourceId": "Teardown",
        "ResourceType": "Custom::StudioTeardown",
        **({"PhysicalResourceId": f"studio-teardown-{domain_id}"} if request_type != "Create" else {}),
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:teardown",
            "DomainId": domain_id,
            "TeardownOnDelete": "true",
            "HomeEfsRetention": "Delete",
            **props,
        },
    }


def _app(domain: str, name: str, status: str, **owner: str) -> dict[str, Any]:
    return {"DomainId": domain, "AppType": "JupyterLab", "AppName": name, "Status": status, **owner}


def test_delete_empties_the_domain_then_deletes_it_and_answers_cloudformation(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "full-teardown")
    apps = [
        _app(domain, "default", "InService", UserProfileName="alice"),
        _app(domain, "shared", "Deleting", SpaceName="team"),
    ]
    stub.add_response("list_apps", {"Apps": apps}, {"DomainIdEquals": domain})
    stub.add_response(
        "delete_app",
        {},
        {"DomainId": domain, "AppType": "JupyterLab", "AppName": "default", "UserProfileName": "alice"},
    )
    stub.add_response("list_apps", {"Apps": [{**apps[0], "Status": "Deleted"}, apps[1]]}, {"DomainIdEquals": domain})
    stub.add_response("list_apps", {"Apps": [{**apps[1], "Status": "Deleted"}]}, {"DomainIdEquals": domain})
    stub.add_response(
        "list_spaces",
        {"Spaces": [{"DomainId": domain, "SpaceName": "team", "Status": "InService"}]},
        {"DomainIdEquals": domain},
    )
    stub.add_response("delete_space", {}, {"DomainId": domain, "SpaceName": "team"})
    stub.add_response("list_spaces", {"Spaces": []}, {"DomainIdEquals": domain})
    profiles = [{"DomainId": domain, "UserProfileName": n, "Status": "InService"} for n in ("alice", "bob")]
    stub.add_response("list_user_profiles", {"UserProfiles": profiles}, {"DomainIdEquals": domain})
    for name in ("alice", "bob"):
        stub.add_response("delete_user_profile", {}, {"DomainId": domain, "UserProfileName": name})
    stub.add_response("list_user_profiles", {"UserProfiles": []}, {"DomainIdEquals": domain})

    clock = Clock()
    outcome = handle(
        _event(response_sink, domain), remaining_seconds=900, client_factory=lambda: client, sleep=clock.sleep
    )

    assert (outcome.status, outcome.delivered) == ("SUCCESS", True)
    (document,) = response_sink.documents
    assert document["Status"] == "SUCCESS"
    assert document["PhysicalResourceId"] == f"studio-teardown-{domain}"
    assert (document["RequestId"], document["LogicalResourceId"]) == ("req-1", "Teardown")
    assert document["Reason"] == "5 deletions"  # 1 app (the other was already deleting), 1 space, 2 profiles, domain
    assert domain not in [d["DomainId"] for d in real.list_domains()["Domains"]]
    assert clock.sleeps == [2.0, 4.0, 2.0, 2.0]  # two waits for the apps, one for the space, one for the profiles


def test_retained_home_efs_keeps_the_domain_for_cloudformation(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "keep-efs")
    stub.add_response("list_apps", {"Apps": []})
    stub.add_response("list_spaces", {"Spaces": []})
    stub.add_response("list_user_profiles", {"UserProfiles": []})
    assert handle(_event(response_sink, domain, HomeEfsRetention="Retain"), 900, lambda: client).status == "SUCCESS"
    assert real.describe_domain(DomainId=domain)["Status"] == "InService"


def test_throttling_is_retried_with_backoff(sagemaker) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "throttled")
    for _ in range(2):
        stub.add_client_error("list_apps", service_error_code="ThrottlingException", http_status_code=400)
    stub.add_response("list_apps", {"Apps": []})
    stub.add_client_error("list_spaces", service_error_code="TooManyRequestsException", http_status_code=429)
    stub.add_response("list_spaces", {"Spaces": []})
    stub.add_response("list_user_profiles", {"UserProfiles": []})
    clock = Clock()
    Teardown(client, domain, deadline=900, sleep=clock.sleep, clock=clock, log=lambda _: None).run(delete_domain=False)
    assert clock.sleeps == [1.0, 2.0, 1.0]


def test_throttling_that_never_ends_fails_the_event(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "always-throttled")
    for _ in range(8):
        stub.add_client_error("list_apps", service_error_code="ThrottlingException", http_status_code=400)
    outcome = handle(_event(response_sink, domain), 900, lambda: client, sleep=lambda _: None)
    assert (outcome.status, outcome.delivered) == ("FAILED", True)
    (document,) = response_sink.documents
    assert document["Status"] == "FAILED"
    assert f"teardown of {domain} failed" in document["Reason"]
    assert "ThrottlingException" in document["Reason"]


def test_throttling_backoff_never_sleeps_past_the_deadline(sagemaker) -> None:
    # Eight throttled tries would sleep 1+2+4+8+16+20+20 = 71 s; with 1 s left the teardown stops at once.
    real, stub, client = sagemaker
    domain = _domain(real, "throttled-at-the-end")
    stub.add_client_error("list_apps", service_error_code="ThrottlingException", http_status_code=400)
    stub.add_client_error("list_apps", service_error_code="ThrottlingException", http_status_code=400)
    clock = Clock()
    teardown = Teardown(client, domain, deadline=1.5, sleep=clock.sleep, clock=clock, log=lambda _: None)
    with pytest.raises(TeardownTimeout, match=rf"list_apps on domain {domain} still throttled .* after 2 tries"):
        teardown.run(delete_domain=False)
    assert clock.sleeps == [1.0]
    assert clock.now <= 1.5


def test_an_app_already_deleting_is_waited_for_not_deleted_again(sagemaker) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "in-progress")
    app = _app(domain, "default", "InService", UserProfileName="alice")
    stub.add_response("list_apps", {"Apps": [app]})
    # Between our list and our delete, SageMaker started deleting it (idle shutdown, or a user).
    stub.add_client_error("delete_app", service_error_code="ResourceInUse", http_status_code=400)
    stub.add_response("list_apps", {"Apps": [{**app, "Status": "Deleting"}]})
    stub.add_response("list_apps", {"Apps": []})
    stub.add_response("list_spaces", {"Spaces": []})
    stub.add_response("list_user_profiles", {"UserProfiles": []})
    clock = Clock()
    actions = Teardown(client, domain, deadline=900, sleep=clock.sleep, clock=clock, log=lambda _: None).run(
        delete_domain=False
    )
    assert actions == []
    assert clock.sleeps == [2.0, 4.0]  # backoff between status checks


def test_domain_already_gone_succeeds_without_touching_anything(sagemaker, response_sink) -> None:
    _, _, client = sagemaker
    assert handle(_event(response_sink, "d-doesnotexist"), 900, lambda: client).status == "SUCCESS"
    assert response_sink.documents[0]["Reason"] == "0 deletions"


def test_a_repeated_delete_event_is_harmless(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "twice")
    stub.add_response("list_apps", {"Apps": []})
    stub.add_response("list_spaces", {"Spaces": []})
    stub.add_response("list_user_profiles", {"UserProfiles": []})
    event = _event(response_sink, domain)
    assert handle(event, 900, lambda: client).status == "SUCCESS"
    assert handle(event, 900, lambda: client).status == "SUCCESS"  # CloudFormation retried: the domain is gone
    assert [d["Status"] for d in response_sink.documents] == ["SUCCESS", "SUCCESS"]
    assert [d["Reason"] for d in response_sink.documents] == ["1 deletions", "0 deletions"]


def test_apps_that_outlast_the_deadline_fail_the_event_with_what_is_left(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "slow")
    stuck = _app(domain, "default", "Deleting", UserProfileName="alice")
    for _ in range(3):
        stub.add_response("list_apps", {"Apps": [stuck]})
    clock = Clock()
    teardown = Teardown(client, domain, deadline=10, sleep=clock.sleep, clock=clock, log=lambda _: None)
    with pytest.raises(TeardownTimeout, match=rf"1 apps of domain {domain} still deleting at the deadline"):
        teardown.run(delete_domain=True)
    # The handler turns it into a FAILED response that names the domain.
    stub.add_response("list_apps", {"Apps": [stuck]})
    outcome = handle(_event(response_sink, domain), handler.SAFETY_MARGIN_SECONDS + 1, lambda: client)
    assert outcome.status == "FAILED"
    assert "still deleting at the deadline" in response_sink.documents[0]["Reason"]


def test_keep_policy_and_create_events_do_nothing(sagemaker, response_sink) -> None:
    real, _, client = sagemaker
    domain = _domain(real, "kept")
    assert handle(_event(response_sink, domain, TeardownOnDelete="false"), 900, lambda: client).status == "SUCCESS"
    assert handle(_event(response_sink, domain, "Create"), 900, lambda: client).status == "SUCCESS"
    assert real.describe_domain(DomainId=domain)["Status"] == "InService"
    assert response_sink.documents[1]["Data"] == {"DomainId": domain}

    assert response_sink.documents[1]["PhysicalResourceId"] == f"studio-teardown-{domain}"


# --- every event gets its answer --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_type", "mutate", "status", "message"),
    [
        (
            "Create",
            lambda e: e["ResourceProperties"].pop("DomainId"),
            "FAILED",
            "bad properties: DomainId: Field required",
        ),
        ("Update", lambda e: e["ResourceProperties"].update(HomeEfsRetention="Shred"), "FAILED", "HomeEfsRetention"),
        ("Create", lambda e: e.update(RequestType="Rename"), "FAILED", "does not match any of the expected tags"),
        ("Create", lambda e: e.pop("StackId"), "FAILED", "bad event: Create.StackId: Field required"),
        ("Update", lambda e: e.pop("RequestId"), "FAILED", "Update.RequestId: Field required"),
        ("Create", lambda e: e.update(LogicalResourceId=7), "FAILED", "Create.LogicalResourceId: Input should be"),
        # A Delete of what was never created succeeds, or a rolled-back Create ends in ROLLBACK_FAILED.
        (
            "Delete",
            lambda e: e["ResourceProperties"].pop("DomainId"),
            "SUCCESS",
            "nothing to delete: invalid properties",
        ),
        ("Delete", lambda e: e.update(ResourceProperties="junk"), "SUCCESS", "nothing to delete"),
        ("Delete", lambda e: e.pop("LogicalResourceId"), "SUCCESS", "nothing to delete: unreadable event"),
    ],
)
def test_a_bad_event_is_answered_once_naming_the_field(
    sagemaker, response_sink, request_type, mutate, status, message
) -> None:
    _, _, client = sagemaker
    event = _event(response_sink, "d-abc123", request_type)
    mutate(event)
    outcome = handle(event, 900, lambda: client)
    assert (outcome.status, outcome.delivered) == (status, True)
    (document,) = response_sink.documents
    assert document["Status"] == status
    assert message in document["Reason"]
    # Whatever identifiers the event had are echoed; missing or mistyped ones are empty.
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert document[key] == (event[key] if isinstance(event.get(key), str) else "")


def test_an_unexpected_exception_still_answers_failed_with_the_reason(sagemaker, response_sink) -> None:
    real, _, client = sagemaker
    domain = _domain(real, "unexpected")

    class Broken:
        """The real client, except that listing apps hits a bug nobody foresaw."""

        def __getattr__(self, name: str) -> Any:
            if name == "list_apps":
                raise RuntimeError("a bug nobody foresaw")
            return getattr(client, name)

    outcome = handle(_event(response_sink, domain), 900, Broken)
    assert (outcome.status, outcome.delivered) == ("FAILED", True)
    assert response_sink.documents[0]["Reason"] == "unexpected error: RuntimeError: a bug nobody foresaw"


def test_an_app_listed_without_its_owner_fails_naming_it(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "odd-listing")
    stub.add_response("list_apps", {"Apps": [{"DomainId": domain, "AppType": "JupyterLab", "AppName": "x"}]})
    outcome = handle(_event(response_sink, domain), 900, lambda: client)
    assert outcome.status == "FAILED"
    assert "neither SpaceName nor UserProfileName" in response_sink.documents[0]["Reason"]
    stub.add_response("list_apps", {"Apps": []})
    stub.add_response("list_spaces", {"Spaces": [{"DomainId": domain, "Status": "InService"}]})
    with pytest.raises(UnexpectedListing, match="list_spaces returned an item whose SpaceName is not a name"):
        Teardown(client, domain, deadline=900, clock=Clock(), log=lambda _: None).run(delete_domain=False)


def test_a_client_that_cannot_be_built_answers_failed(response_sink, monkeypatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    sagemaker_client.cache_clear()
    outcome = handle(_event(response_sink, "d-abc123"), 900)  # the real factory: no region, NoRegionError
    sagemaker_client.cache_clear()
    assert (outcome.status, outcome.delivered) == ("FAILED", True)
    assert response_sink.documents[0]["Reason"] == "teardown of d-abc123 failed: You must specify a region."


# --- the answer itself -----------------------------------------------------------------------------

FAST = functools.partial(cfn_response.send, backoff_factor=0.01, timeout=Timeout(connect=0.5, read=0.5))


def test_an_unreachable_response_url_is_retried_then_reported_not_raised(sagemaker, closed_port_url) -> None:
    _, _, client = sagemaker
    event = {**_event(None, "d-abc123", "Create"), "ResponseURL": closed_port_url}
    started = time.monotonic()
    outcome = handle(event, 900, lambda: client, respond=FAST)
    assert (outcome.status, outcome.delivered) == ("SUCCESS", False)
    assert time.monotonic() - started < 10


def test_a_response_url_that_never_answers_is_bounded(silent_server_url) -> None:
    target = cfn_response.ResponseTarget(silent_server_url, "stack", "req", "Teardown")
    started = time.monotonic()
    failure = FAST(target, status="FAILED", reason="x", physical_id="p")
    assert failure is not None and "not delivered" in failure
    assert time.monotonic() - started < 4 * (0.5 + 0.5) + 2  # four tries, each bounded


def test_a_response_refused_twice_is_delivered_on_the_third_try(flaky_sink) -> None:
    target = cfn_response.ResponseTarget(flaky_sink.url, "stack", "req", "Teardown")
    assert FAST(target, status="SUCCESS", reason="ok", physical_id="p") is None
    assert flaky_sink.attempts == 3
    assert len(flaky_sink.documents) == 1
    # The pre-signed query string arrives exactly as sent: re-encoding would break its signature.
    assert flaky_sink.paths[-1] == "/response?X-Amz-Signature=abc%2Fdef"


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_only_https_response_urls_are_written_to(tmp_path: Path, plain_http_sink, scheme: str) -> None:
    local = tmp_path / "response"
    local.write_text("untouched")
    url = local.as_uri() if scheme == "file" else plain_http_sink.url
    event = {**_event(None, "d-abc123", "Create"), "ResponseURL": url}
    outcome = handle(event, 900, lambda: pytest.fail("no client is needed"))
    assert (outcome.status, outcome.delivered) == (None, False)
    assert "ResponseURL must be https" in outcome.reason
    assert local.read_text() == "untouched"
    assert plain_http_sink.attempts == 0


def test_a_long_unicode_reason_is_cut_to_fit_cloudformations_4_kb(response_sink) -> None:
    target = cfn_response.ResponseTarget(response_sink.url, "s" * 200, "r", "Teardown")
    reason = "äpp ünicode 🚀 " * 2000
    assert cfn_response.send(target, status="FAILED", reason=reason, physical_id="p" * 1024) is None
    (document,) = response_sink.documents
    assert document["Reason"].endswith(" [cut]")
    assert reason.startswith(document["Reason"].removesuffix(" [cut]"))
    assert len(json.dumps(document).encode()) <= cfn_response.MAX_BODY_BYTES


# --- the Lambda entry point, as Lambda calls it ------------------------------------------------------


class LambdaContext:
    """The attributes Lambda's context object has, for an invocation with ``seconds`` left."""

    function_name = "studio-teardown"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:studio-teardown"
    aws_request_id = "11111111-2222-3333-4444-555555555555"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


@pytest.fixture
def lambda_environment(moto_endpoint, monkeypatch) -> None:
    """What Lambda's environment gives the function (region, credentials); the endpoint points at moto."""
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", moto_endpoint)
    sagemaker_client.cache_clear()
    yield
    sagemaker_client.cache_clear()


def test_lambda_handler_answers_a_delete_of_a_domain_already_gone(lambda_environment, response_sink) -> None:
    assert lambda_handler(_event(response_sink, "d-alreadygone"), LambdaContext(900)) == {"status": "SUCCESS"}
    assert [d["Status"] for d in response_sink.documents] == ["SUCCESS"]


def test_lambda_handler_raises_when_cloudformation_was_not_answered(
    lambda_environment, closed_port_url, monkeypatch
) -> None:
    # Raising hands the event to Lambda's retries and then to the dead-letter queue, where it is seen.
    monkeypatch.setattr(cfn_response, "BACKOFF_FACTOR", 0.01)  # the same four tries, without the waits
    event = {**_event(None, "d-abc123", "Create"), "ResponseURL": closed_port_url}
    with pytest.raises(ResponseNotDelivered, match=r"CloudFormation not answered \(SUCCESS\)"):
        lambda_handler(event, LambdaContext(900))


@pytest.mark.parametrize("event", [None, [], "text", 3, {"RequestType": "Delete"}])
def test_lambda_handler_logs_and_raises_for_an_event_without_an_answer_address(lambda_environment, event) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    collector = Collect()
    logging.getLogger("studio-teardown").addHandler(collector)
    try:
        with pytest.raises(ResponseNotDelivered, match=r"CloudFormation not answered \(None\)"):
            lambda_handler(event, LambdaContext(900))
    finally:
        logging.getLogger("studio-teardown").removeHandler(collector)
    assert any(r.levelno == logging.ERROR and "cannot be answered" in r.getMessage() for r in records)


def test_the_deadline_margin_covers_one_sdk_call_and_a_whole_answer(lambda_environment) -> None:
    config = sagemaker_client().meta.config
    assert config.read_timeout == handler.SDK_READ_TIMEOUT_SECONDS  # not botocore's 60 s default
    assert config.connect_timeout == handler.SDK_CONNECT_TIMEOUT_SECONDS
    assert (
        config.connect_timeout + config.read_timeout + (cfn_response.WORST_CASE_SECONDS) < handler.SAFETY_MARGIN_SECONDS
    )


def test_a_certificate_nobody_trusts_is_not_answered(tls_files, monkeypatch) -> None:
    # The test certificate is trusted only through SSL_CERT_FILE: without it, verification fails as in AWS.
    from tests.integration.lambdas.conftest import ResponseSink

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    sink = ResponseSink(tls_files)
    try:
        target = cfn_response.ResponseTarget(sink.url, "stack", "req", "Teardown")
        failure = FAST(target, status="SUCCESS", reason="ok", physical_id="p")
    finally:
        sink.server.shutdown()
    assert failure is not None and "CERTIFICATE_VERIFY_FAILED" in failure
    assert sink.documents == []
