"""The deploy functions under AWS faults, injected at botocore's ``before-send`` in front of the moto server.

Each test builds the clients as the handler does (``handler.BOTO_CONFIG``: standard retry mode, up to
five retries), lets botocore's own retry logic run, and asserts what the deploy did in the local AWS:
how many executions, which stack parameters, which messages. A retryable fault is retried and the
step finishes once; one that is not fails with the service's error; a rerun after a failure finishes
the job without a second execution, a second update or a lost notification.

The world (staging's synthesized endpoint stack in moto's CloudFormation, the registry, the deploy's
table, topic and state machine) is ``deploy_world.py``'s, as in ``test_model_deploy``.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from model_deploy import handler
from model_deploy.deploy import deploy_id
from model_deploy.events import ModelPackageStateChange
from model_deploy.stage import Stage

from tests.integration.conftest import REGION, aws_client
from tests.integration.faults import FaultInjector, capped_backoff, error, lost_response, server_error, throttling
from tests.integration.lambdas.deploy_world import STACK, STATE_MACHINE, World, make_task, package_event


def _deployer(world: World):
    """The deploy's functions with the handler's retry configuration on every client."""
    deployer = world.deployer()
    for name in ("stepfunctions", "sns", "dynamodb", "s3"):
        setattr(deployer, name, aws_client(name, world.endpoint, config=handler.BOTO_CONFIG))
    return deployer


def _stage(world: World, name: str = "staging") -> Stage:
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    stage = Stage.assume(world.settings.stage(name), session=session, deploy_id="faults", config=handler.BOTO_CONFIG)
    stage.runtime = world.runtime
    return stage


def _executions(world: World) -> list[dict]:
    return world.client("stepfunctions").list_executions(stateMachineArn=STATE_MACHINE)["executions"]


def _approved(world: World, event_id: str) -> ModelPackageStateChange:
    return ModelPackageStateChange.model_validate(package_event(world.versions[1], "Approved", event_id=event_id))


# --- the trigger ------------------------------------------------------------------------------------


def test_a_start_whose_answer_was_lost_is_one_execution_and_the_trigger_knows_it(world: World) -> None:
    deployer = _deployer(world)
    with FaultInjector(deployer.stepfunctions) as faults, capped_backoff():
        faults.add("StartExecution", lost_response())  # started in the local AWS, then the answer is lost
        decision = deployer.on_package_change(_approved(world, "event-lost"))
    assert faults.attempts["StartExecution"] == 2  # botocore retried the read timeout once
    (execution,) = _executions(world)
    assert execution["name"] == f"approved-v2-{deploy_id('event-lost')}"
    # Whether the service answers the retry with the execution or with ExecutionAlreadyExists (moto), the
    # trigger names this event's execution; the execution announces itself, so no announcement is lost.
    assert decision.action in ("started", "duplicate") and decision.execution_arn == execution["executionArn"]


def test_a_throttled_start_is_retried_and_starts_one_execution(world: World) -> None:
    deployer = _deployer(world)
    with FaultInjector(deployer.stepfunctions) as faults, capped_backoff() as delays:
        faults.add("StartExecution", throttling(), server_error(503))
        decision = deployer.on_package_change(_approved(world, "event-throttled"))
    assert decision.action == "started" and faults.attempts["StartExecution"] == 3 and len(delays) == 2
    assert [e["executionArn"] for e in _executions(world)] == [decision.execution_arn]


def test_a_start_that_keeps_failing_fails_the_trigger_and_its_rerun_starts_the_deploy_once(world: World) -> None:
    deployer = _deployer(world)
    event = _approved(world, "event-rerun")
    with FaultInjector(deployer.stepfunctions) as faults, capped_backoff():
        faults.always("StartExecution", server_error(500))
        with pytest.raises(ClientError, match="InternalFailure"):
            deployer.on_package_change(event)
    # botocore's max_attempts counts the retries: the first attempt and five more.
    assert faults.attempts["StartExecution"] == 6 and _executions(world) == []
    # EventBridge retries the invocation (the idempotency record of a failed one is removed): one deploy.
    assert deployer.on_package_change(event).action == "started"
    assert deployer.on_package_change(event).action == "duplicate"
    assert len(_executions(world)) == 1


def test_a_trigger_that_may_not_read_the_executions_fails_with_the_services_error(world: World) -> None:
    deployer = _deployer(world)
    with FaultInjector(deployer.stepfunctions) as faults:
        faults.always("DescribeExecution", error("AccessDeniedException", message="not authorized"))
        with pytest.raises(ClientError, match="AccessDeniedException"):
            deployer.on_package_change(_approved(world, "event-denied"))
    assert faults.attempts["DescribeExecution"] == 1  # not retried: retrying cannot grant the permission
    assert _executions(world) == []


# --- the stage's update -----------------------------------------------------------------------------


def _parameter(world: World) -> str:
    return world.stack_parameters()["ModelPackageArn"]


def test_a_throttled_update_stack_is_retried_and_sets_the_version_once(world: World) -> None:
    v1 = world.versions[0]
    deployer, stage = _deployer(world), _stage(world)
    deployer.stage_of = lambda settings, _id: stage
    with FaultInjector(stage.cloudformation) as faults, capped_backoff():
        faults.add("UpdateStack", throttling("Throttling"), server_error(500))
        assert deployer.run(make_task(world, "update", v1))["state"] == "started"
    assert faults.attempts["UpdateStack"] == 3
    assert _parameter(world) == v1.arn
    assert deployer.run(make_task(world, "status", v1))["state"] == "complete"
    assert deployer.run(make_task(world, "verify", v1))["state"] == "serving"


def test_an_update_whose_answer_was_lost_is_not_applied_twice_and_its_rerun_changes_nothing(world: World) -> None:
    v1 = world.versions[0]
    deployer, stage = _deployer(world), _stage(world)
    deployer.stage_of = lambda settings, _id: stage
    events_before = len(world.client("cloudformation").describe_stack_events(StackName=STACK)["StackEvents"])
    with FaultInjector(stage.cloudformation) as faults, capped_backoff():
        faults.add("UpdateStack", lost_response())
        first = deployer.run(make_task(world, "update", v1))
    assert faults.attempts["UpdateStack"] == 2
    # The retry reached a stack that already has the version: CloudFormation's "No updates are to be
    # performed" (or moto's repeat of the same update) is not an error; either way the stack has v1.
    assert first["state"] in ("started", "unchanged") and _parameter(world) == v1.arn
    # Step Functions retrying the task after a failure: the stack already says v1, nothing is updated.
    with FaultInjector(stage.cloudformation) as faults:
        assert deployer.run(make_task(world, "update", v1))["state"] == "unchanged"
    assert faults.attempts["UpdateStack"] == 0
    assert len(world.client("cloudformation").describe_stack_events(StackName=STACK)["StackEvents"]) > events_before
    assert deployer.run(make_task(world, "verify", v1))["state"] == "serving"


def test_a_stack_that_vanished_mid_deploy_fails_the_update_naming_the_stack(world: World) -> None:
    deployer, stage = _deployer(world), _stage(world)
    deployer.stage_of = lambda settings, _id: stage
    with FaultInjector(stage.cloudformation) as faults:
        faults.always("DescribeStacks", error("ValidationError", message=f"Stack with id {STACK} does not exist"))
        with pytest.raises(Exception, match=f"stack {STACK} does not exist: deploy the environment first"):
            deployer.run(make_task(world, "update", world.versions[0]))
    assert faults.attempts["UpdateStack"] == 0


# --- notifications and approvals --------------------------------------------------------------------


def test_a_throttled_notification_is_retried_and_sent_once(world: World) -> None:
    deployer = _deployer(world)
    task = make_task(world, "notify", world.versions[1], outcome="succeeded").model_copy(update={"stage": None})
    with FaultInjector(deployer.sns) as faults, capped_backoff():
        faults.add("Publish", throttling("Throttling"), server_error(503))
        assert deployer.run(task)["detail"] == "succeeded"
    assert faults.attempts["Publish"] == 3
    assert [n["subject"] for n in world.notifications()] == ["Deploy succeeded: v2 (approved)"]


def test_an_approval_request_that_failed_is_rerun_into_one_waiting_approval(world: World) -> None:
    deployer = _deployer(world)
    task = make_task(world, "approval", world.versions[1], token="token-1")
    task = task.model_copy(update={"stage": task.stage.model_copy(update={"name": "prod", "approval": True})})
    with FaultInjector(deployer.dynamodb) as faults, capped_backoff():
        faults.always("PutItem", server_error(500))
        with pytest.raises(ClientError, match="InternalFailure"):
            deployer.run(task)
    assert faults.attempts["PutItem"] == 6
    assert world.notifications() == []  # nobody is asked to approve what is not recorded
    # Step Functions retries the task: the approval is recorded once (one item per stage) and asked once.
    assert deployer.run(task)["state"] == "requested"
    items = world.client("dynamodb").scan(TableName=world.settings.table_name)["Items"]
    assert [(i["id"]["S"], i["token"]["S"]) for i in items] == [("approval#prod", "token-1")]
    assert [n["subject"] for n in world.notifications()] == ["Approve v2 for prod?"]
