"""The Studio teardown custom resource, through boto3 against a moto server on 127.0.0.1.

moto implements the domain calls (create, describe, delete), which go over real HTTP.
It does not implement apps, spaces or user profiles: those calls, and only those, go to a
second client with botocore's Stubber. CloudFormation's response URL is a local HTTP
endpoint, so the response document is really PUT and read back.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber
from studio_teardown.handler import handle
from studio_teardown.teardown import Teardown, TeardownTimeout

from tests.integration.conftest import aws_client

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
        "ResponseURL": sink.url,
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


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
    status = handle(_event(response_sink, domain), remaining_seconds=900, client=client, sleep=clock.sleep)

    assert status == "SUCCESS"
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
    assert handle(_event(response_sink, domain, HomeEfsRetention="Retain"), 900, client) == "SUCCESS"
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
    teardown = Teardown(client, domain, deadline=900, sleep=lambda _: None, log=lambda _: None)
    with pytest.raises(Exception, match="ThrottlingException"):
        teardown.run(delete_domain=False)


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
    assert handle(_event(response_sink, "d-doesnotexist"), 900, client) == "SUCCESS"
    assert response_sink.documents[0]["Reason"] == "0 deletions"


def test_a_repeated_delete_event_is_harmless(sagemaker, response_sink) -> None:
    real, stub, client = sagemaker
    domain = _domain(real, "twice")
    stub.add_response("list_apps", {"Apps": []})
    stub.add_response("list_spaces", {"Spaces": []})
    stub.add_response("list_user_profiles", {"UserProfiles": []})
    event = _event(response_sink, domain)
    assert handle(event, 900, client) == "SUCCESS"
    assert handle(event, 900, client) == "SUCCESS"  # CloudFormation retried: the domain is already gone
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
    assert handle(_event(response_sink, domain), remaining_seconds=31, client=client) == "FAILED"
    assert "still deleting at the deadline" in response_sink.documents[0]["Reason"]


def test_keep_policy_and_create_events_do_nothing(sagemaker, response_sink) -> None:
    real, _, client = sagemaker
    domain = _domain(real, "kept")
    assert handle(_event(response_sink, domain, TeardownOnDelete="false"), 900, client) == "SUCCESS"
    assert handle(_event(response_sink, domain, "Create"), 900, client) == "SUCCESS"
    assert real.describe_domain(DomainId=domain)["Status"] == "InService"
    assert response_sink.documents[1]["Data"] == {"DomainId": domain}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e["ResourceProperties"].pop("DomainId"), "DomainId"),
        (lambda e: e["ResourceProperties"].update(HomeEfsRetention="Shred"), "HomeEfsRetention"),
        (lambda e: e.update(RequestType="Rename"), "unknown RequestType 'Rename'"),
        (lambda e: e.pop("StackId"), "StackId"),
    ],
)
def test_a_bad_event_fails_and_names_the_field(sagemaker, response_sink, mutate, message) -> None:
    _, _, client = sagemaker
    event = _event(response_sink, "d-abc123")
    mutate(event)
    if "StackId" not in event:  # without it there is no way to answer: the error is raised
        with pytest.raises(KeyError, match="StackId"):
            handle(event, 900, client)
        return
    assert handle(event, 900, client) == "FAILED"
    assert message in response_sink.documents[0]["Reason"]
