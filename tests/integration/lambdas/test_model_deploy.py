"""The deploy functions through boto3 against a moto server on 127.0.0.1, on the real endpoint template.

Given: staging's synthesized endpoint stack (``cdk.out``, as ``cdk deploy`` creates it: no model)
created in moto's CloudFormation, a registry with approved versions whose metadata names their
test split, and the deploy's table and topic (``deploy_world.py``). The functions find the local server through
``AWS_ENDPOINT_URL``; nothing in the code under test is patched.

What moto cannot do, and how the tests stand in for it:
- moto's CloudFormation applies an update at once and replaces resources without blue/green; a
  rollback by SageMaker's guardrails is made by the test, with real API calls that leave the world
  as AWS would (the endpoint back on the old config while the stack names the new one);
- moto's ``invoke_endpoint`` answers a canned body, so the smoke test calls a real model server
  (``python -m ml_code.serve``) through ``tools.local_endpoint.LocalRuntime``;
- moto's CloudFormation does not create alarms or scalable targets, and cannot create KMS keys with
  tags: the test removes the ``Tags`` properties of the template before creating it (nothing a
  deploy reads).
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from model_deploy import handler
from model_deploy.deploy import RolledBack, deploy_id
from model_deploy.events import ModelPackageStateChange, Plan, PlannedStage, Version
from model_deploy.registry import RegistryError
from model_deploy.smoke import SmokeTestFailed
from model_deploy.stage import StageError

from pipelines import approve
from stacks.config import load_config
from tests.conftest import ROOT
from tests.integration.conftest import REGION
from tests.integration.lambdas.deploy_world import (
    ACCOUNT,
    ARTIFACTS,
    GROUP,
    SAMPLE,
    STACK,
    STATE_MACHINE,
    World,
    deploy_to_staging,
    make_task,
    package_event,
)

# --- update, follow, verify ---------------------------------------------------------------------


def test_an_update_sets_the_stack_to_the_version_and_the_endpoint_serves_it(world: World) -> None:
    v1 = world.versions[0]
    # Given the stack as cdk deploy left it: no model, no endpoint.
    assert world.stack_parameters()["ModelPackageArn"] == ""
    assert world.client("sagemaker").list_endpoints()["Endpoints"] == []
    # When the deploy updates staging to v1 and verifies it
    verified = deploy_to_staging(world, v1)
    # Then the stack carries the version, its baselines and the deploy's id, and the endpoint serves v1.
    parameters = world.stack_parameters()
    assert parameters["ModelPackageArn"] == v1.arn
    assert parameters["DeployId"] == "abc123"
    assert parameters["DataBaselineConstraintsUri"].endswith("/run-1/constraints.json")
    assert parameters["ModelEvaluationUri"].endswith("/run-1/evaluation.json")
    assert verified["state"] == "serving"
    served = world.stage().served()
    assert served.package_arn == v1.arn and served.model_name.startswith("mlops-staging-endpoint-")
    (stack,) = world.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
    assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["ServedModelPackageArn"] == v1.arn


def test_updating_to_the_version_already_set_changes_nothing(world: World) -> None:
    v1 = world.versions[0]
    deploy_to_staging(world, v1)
    served = world.stage().served()
    # A redelivered task, or a rerun after a failure: no second update.
    assert world.deployer().run(make_task(world, "update", v1))["state"] == "unchanged"
    assert world.stage().served() == served


def test_a_stage_serving_a_newer_approved_version_is_not_rolled_back_by_a_slow_deploy(world: World) -> None:
    v1, v2 = world.versions
    deploy_to_staging(world, v2)
    result = world.deployer().run(make_task(world, "update", v1))
    assert result == {"state": "superseded", "detail": "staging serves version 2"}
    assert world.stack_parameters()["ModelPackageArn"] == v2.arn


def test_a_version_that_is_no_longer_approved_is_not_deployed(world: World) -> None:
    v1 = world.versions[0]
    world.client("sagemaker").update_model_package(ModelPackageArn=v1.arn, ModelApprovalStatus="Rejected")
    with pytest.raises(RegistryError, match="version 1 is Rejected, not Approved"):
        world.deployer().run(make_task(world, "update", v1))
    assert world.stack_parameters()["ModelPackageArn"] == ""


def test_an_update_rolled_back_by_sagemaker_is_detected_and_the_stack_restored_to_what_serves(world: World) -> None:
    v1, v2 = world.versions
    # Given v2 deployed by CloudFormation...
    deployer = world.deployer()
    deploy_to_staging(world, v2)
    # ...while SageMaker's guardrails rolled the endpoint back to v1's config, which CloudFormation retained
    # (moto neither rolls back nor retains: the test recreates that config and puts the endpoint on it).
    _retained_config(world, "mlops-staging-v1-earlier", _recreate_model(world, v1))
    world.serve_endpoint_on("mlops-staging-v1-earlier")
    # When the deploy verifies, it says so and names what serves
    verified = deployer.run(make_task(world, "verify", v2))
    assert verified["state"] == "rolled_back"
    assert verified["serving"] == v1.model_dump()
    assert "rolled the update to v2 back; the endpoint serves mlops-staging-v1-earlier (v1)" in verified["detail"]
    # and restoring sets the stack back to v1, so that its monitoring baselines are those of what serves.
    restore = make_task(world, "update", v2, target=Version.model_validate(verified["serving"]), restoring=True)
    assert deployer.run(restore)["state"] == "started"
    parameters = world.stack_parameters()
    assert parameters["ModelPackageArn"] == v1.arn
    assert parameters["DataBaselineStatisticsUri"].endswith("/run-1/statistics.json")
    # (What SageMaker then serves is not exercised: moto's CloudFormation mishandles replacing an endpoint config.)


def _retained_config(world: World, name: str, model: str) -> None:
    variant = {"VariantName": "primary", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    world.client("sagemaker").create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])


def _configs(world: World) -> list[str]:
    return [c["EndpointConfigName"] for c in world.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]]


def _recreate_model(world: World, version: Version) -> str:
    # moto's CloudFormation deletes replaced resources (it ignores UpdateReplacePolicy): recreate the retained one.
    name = f"mlops-staging-v{version.number}-retained"
    world.client("sagemaker").create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-staging-endpoint-model",
        PrimaryContainer={"ModelPackageName": version.arn},
    )
    return name


def test_a_stage_whose_stack_does_not_exist_yet_is_named_with_what_to_do(world: World) -> None:
    # prod's endpoint stack was never created here: what a stage looks like before `make deploy ENV=prod`.
    task = make_task(world, "update", world.versions[0]).model_copy(
        update={"stage": PlannedStage(name="prod", approval=True)}
    )
    with pytest.raises(
        StageError, match=r"prod: stack mlops-prod-endpoint does not exist: deploy the environment first"
    ):
        world.deployer().run(task)


# --- smoke test, against a real model server ------------------------------------------------------


def test_the_smoke_test_sends_the_versions_test_rows_to_the_endpoint_and_judges_the_answers(
    world: World, server
) -> None:
    v1 = world.versions[0]
    deploy_to_staging(world, v1)
    world.runtime.ports[world.stage().served().endpoint_name] = server[0]
    result = world.deployer().run(make_task(world, "smoke", v1))
    assert result["state"] == "passed"
    assert result["detail"].startswith("staging: 11 requests, 0 errors")  # 10 one-row requests, then all 10 at once


def test_a_slow_endpoint_fails_the_smoke_test_naming_its_p95(world: World, server) -> None:
    v1 = world.versions[0]
    deploy_to_staging(world, v1)
    world.runtime.ports[world.stage().served().endpoint_name] = server[0]
    with pytest.raises(SmokeTestFailed, match=r"p95 latency \d+ ms is above 0.001 ms"):
        world.deployer(p95_ms=0.001).run(make_task(world, "smoke", v1))  # type: ignore[arg-type]


def test_an_endpoint_that_answers_errors_fails_the_smoke_test(world: World, server) -> None:
    v1 = world.versions[0]
    deploy_to_staging(world, v1)
    # A test split with a feature the model does not know: every row has a column too many, answered 400.
    rows = list(csv.reader(io.StringIO(SAMPLE.read_text())))[:20]
    out = io.StringIO()
    csv.writer(out).writerows([[*row[:-1], "extra" if i == 0 else "1.0", row[-1]] for i, row in enumerate(rows)])
    world.client("s3").put_object(
        Bucket=ARTIFACTS, Key="mlops-dev-model-build/run-1/test/test.csv", Body=out.getvalue().encode()
    )
    world.runtime.ports[world.stage().served().endpoint_name] = server[0]
    with pytest.raises(SmokeTestFailed, match="row 1: HTTP 400"):
        world.deployer().run(make_task(world, "smoke", v1))


def test_a_version_without_recorded_test_data_cannot_be_smoke_tested(world: World) -> None:
    old = world.client("sagemaker").create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [{"Image": "x.dkr.ecr.eu-west-1.amazonaws.com/i:t"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    with pytest.raises(Exception, match="records no test data"):
        world.deployer().run(make_task(world, "smoke", Version.of(old)))


# --- the trigger ----------------------------------------------------------------------------------


def test_an_approved_version_starts_one_deploy_and_a_redelivered_event_starts_none(world: World) -> None:
    v2 = world.versions[1]
    event = ModelPackageStateChange.model_validate(package_event(v2, "Approved", event_id="event-42"))
    first = world.deployer().on_package_change(event)
    again = world.deployer().on_package_change(event)
    assert first.action == "started" and again.action == "duplicate"
    assert again.execution_arn == first.execution_arn
    (execution,) = world.client("stepfunctions").list_executions(stateMachineArn=STATE_MACHINE)["executions"]
    assert execution["name"] == f"approved-v2-{deploy_id('event-42')}"
    plan = Plan.model_validate_json(
        world.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])["input"]
    )
    assert plan.version == v2 and [(s.name, s.approval) for s in plan.stages] == [("staging", False), ("prod", True)]
    # The trigger announces nothing: the execution does, in its first state (NotifyStarted), once.
    assert world.notifications() == []


def test_the_trigger_handler_answers_a_redelivery_from_its_idempotency_record(world: World, lambda_context) -> None:
    handler.settings.cache_clear(), handler.deployer.cache_clear(), handler.idempotency.cache_clear()
    env = {
        "TOPIC_ARN": world.settings.topic_arn,
        "TABLE_NAME": world.settings.table_name,
        "MODEL_PACKAGE_GROUP": GROUP,
        "STATE_MACHINE_ARN": STATE_MACHINE,
        "STAGES": json.dumps([s.model_dump() for s in world.settings.stages]),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        event = package_event(world.versions[0], "Approved", event_id="event-7")
        first = handler.trigger_handler(event, lambda_context)
        second = handler.trigger_handler(event, lambda_context)
    handler.settings.cache_clear(), handler.deployer.cache_clear(), handler.idempotency.cache_clear()
    assert first["action"] == "started" and second == first  # the stored answer, not a second decision
    assert len(world.client("stepfunctions").list_executions(stateMachineArn=STATE_MACHINE)["executions"]) == 1
    assert world.notifications() == []  # announced by the execution itself


def test_rejecting_the_served_version_rolls_its_stages_back_to_the_approved_one_before_it(world: World) -> None:
    v1, v2 = world.versions
    deploy_to_staging(world, v2)
    # A deploy of v2 still running (waiting for prod's approval) must not go on.
    sfn = world.client("stepfunctions")
    running = sfn.start_execution(stateMachineArn=STATE_MACHINE, name="approved-v2-old", input=_plan_json(v2))
    world.client("sagemaker").update_model_package(ModelPackageArn=v2.arn, ModelApprovalStatus="Rejected")
    decision = world.deployer().on_package_change(ModelPackageStateChange.model_validate(package_event(v2, "Rejected")))
    assert decision.action == "started"
    assert sfn.describe_execution(executionArn=running["executionArn"])["status"] == "ABORTED"
    rollback = [
        e for e in sfn.list_executions(stateMachineArn=STATE_MACHINE)["executions"] if e["name"].startswith("rollback-")
    ]
    plan = Plan.model_validate_json(sfn.describe_execution(executionArn=rollback[0]["executionArn"])["input"])
    # Only the stage that serves v2, to v1, without waiting for a person: rejecting was the decision.
    assert plan.version == v1 and plan.reason == "rollback"
    assert [(s.name, s.approval) for s in plan.stages] == [("staging", False)]


def test_rejecting_a_version_nobody_serves_starts_nothing_and_says_so(world: World) -> None:
    v2 = world.versions[1]
    decision = world.deployer().on_package_change(ModelPackageStateChange.model_validate(package_event(v2, "Rejected")))
    assert decision.action == "nothing_to_do"
    assert world.client("stepfunctions").list_executions(stateMachineArn=STATE_MACHINE)["executions"] == []
    assert [n["subject"] for n in world.notifications()] == ["Rejected v2: nothing deployed"]


def test_rejecting_the_only_approved_version_has_nothing_to_roll_back_to_and_says_so(world: World) -> None:
    v1 = world.versions[0]
    deploy_to_staging(world, v1)
    decision = world.deployer().on_package_change(ModelPackageStateChange.model_validate(package_event(v1, "Rejected")))
    assert decision.action == "nothing_to_do" and "no earlier version is approved" in decision.reason
    assert world.notifications()[0]["subject"] == "Rejected v1: NO version to roll back to"


def _plan_json(version: Version) -> str:
    return Plan(
        deploy_id="old",
        version=version,
        reason="approved",
        event_id="old-event",
        stages=[PlannedStage(name="staging", approval=False)],
    ).model_dump_json()


# --- the queue, approvals, clean-up, notifications -----------------------------------------------


def test_deploys_run_one_at_a_time_oldest_first(world: World) -> None:
    sfn = world.client("stepfunctions")
    older = sfn.start_execution(
        stateMachineArn=STATE_MACHINE, name="approved-v1-a", input=_plan_json(world.versions[0])
    )
    newer = sfn.start_execution(
        stateMachineArn=STATE_MACHINE, name="approved-v2-b", input=_plan_json(world.versions[1])
    )
    deployer = world.deployer()
    assert deployer.run(make_task(world, "turn", world.versions[1], execution_arn=newer["executionArn"])) == {
        "ready": False,
        "waiting_for": "approved-v1-a",
    }
    turn = deployer.run(make_task(world, "turn", world.versions[0], execution_arn=older["executionArn"]))
    assert turn["ready"] is True
    sfn.stop_execution(executionArn=older["executionArn"])
    turn = deployer.run(make_task(world, "turn", world.versions[1], execution_arn=newer["executionArn"]))
    assert turn["ready"] is True


def test_an_approval_waits_in_the_table_and_pipelines_approve_decides_it_as_the_caller(world: World) -> None:
    v2 = world.versions[1]
    task = make_task(world, "approval", v2, token="token-" + "x" * 600)
    task = task.model_copy(update={"stage": PlannedStage(name="prod", approval=True)})
    world.deployer().run(task)
    (asked,) = world.notifications()
    assert asked["subject"] == "Approve v2 for prod?"
    assert asked["approve_with"].startswith(
        "python -m pipelines.approve --config config/<env>.yaml --stage prod --version 2"
    )
    config = load_config(ROOT / "config" / "dev.yaml")
    dynamodb, sfn = world.client("dynamodb"), world.client("stepfunctions")
    # The version reviewed must be the one waiting.
    with pytest.raises(approve.ApprovalError, match="is version 2, not 1"):
        approve.decide(
            config,
            stage="prod",
            approve=True,
            reason="",
            version=1,
            dynamodb=dynamodb,
            stepfunctions=sfn,
            caller="arn:aws:iam::123456789012:role/bob",
        )
    with pytest.raises(approve.ApprovalError, match="staging is not a stage that waits for a person"):
        approve.decide(
            config,
            stage="staging",
            approve=True,
            reason="",
            version=2,
            dynamodb=dynamodb,
            stepfunctions=sfn,
            caller="x",
        )
    decided = approve.decide(
        config,
        stage="prod",
        approve=True,
        reason="looks good",
        version=2,
        dynamodb=dynamodb,
        stepfunctions=sfn,
        caller="arn:aws:iam::123456789012:role/bob",
    )
    assert decided.token == task.token
    # The approval is closed and the decision recorded with who made it.
    assert "Item" not in dynamodb.get_item(TableName=config.deploy_table_name, Key={"id": {"S": "approval#prod"}})
    record = dynamodb.get_item(TableName=config.deploy_table_name, Key={"id": {"S": "decision#abc123#prod"}})["Item"]
    assert (record["decision"]["S"], record["by"]["S"], record["reason"]["S"]) == (
        "approved",
        "arn:aws:iam::123456789012:role/bob",
        "looks good",
    )
    with pytest.raises(approve.ApprovalError, match="no deploy waits for an approval before prod"):
        approve.decide(
            config,
            stage="prod",
            approve=True,
            reason="",
            version=None,
            dynamodb=dynamodb,
            stepfunctions=sfn,
            caller="x",
        )


def test_clean_up_deletes_retained_versions_nothing_serves_and_keeps_what_serves(world: World) -> None:
    v1 = world.versions[0]
    deploy_to_staging(world, v1)
    served = world.stage().served()
    # Configs and models CloudFormation retained from earlier deploys (moto deletes them: the test makes them).
    old_model = _recreate_model(world, world.versions[1])
    _retained_config(world, "mlops-staging-v2-old", old_model)
    _retained_config(world, "mlops-prod-v2-other", old_model)
    result = world.deployer().run(make_task(world, "cleanup", v1))
    assert result["detail"] == f"staging: deleted mlops-staging-v2-old, {old_model}"
    assert served.endpoint_config in _configs(world)
    assert "mlops-prod-v2-other" in _configs(world)  # another environment's: never touched


def test_the_outcome_is_notified_with_the_failed_steps_reason(world: World) -> None:
    cause = json.dumps(
        {"errorMessage": "staging: smoke test of v2: 11 requests, 11 errors", "errorType": "SmokeTestFailed"}
    )
    task = make_task(
        world, "notify", world.versions[1], outcome="failed", error={"Error": "SmokeTestFailed", "Cause": cause}
    )
    task = task.model_copy(update={"stage": None})
    world.deployer().run(task)
    (message,) = world.notifications()
    assert message["subject"] == "Deploy FAILED: v2 (approved)"
    assert message["error"] == "SmokeTestFailed"
    assert message["cause"] == "SmokeTestFailed: staging: smoke test of v2: 11 requests, 11 errors"


def test_the_execution_announces_its_start_with_what_it_deploys_where(world: World) -> None:
    task = make_task(world, "notify", world.versions[1], outcome="started").model_copy(update={"stage": None})
    world.deployer().run(task)
    (message,) = world.notifications()
    assert message["subject"] == "Deploy started: v2 (approved)"
    assert message["stages"] == ["staging", "prod"] and message["package_arn"] == world.versions[1].arn
    assert "error" not in message


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ("not an event", "expected an EventBridge event object, got str"),
        ({"detail-type": "CloudWatch Alarm State Change"}, "unsupported detail-type 'CloudWatch Alarm State Change'"),
        (
            {
                **package_event(
                    Version.of(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{GROUP}/3"), "Approved"
                ),
                "detail": {"ModelPackageGroupName": GROUP},
            },
            "detail.ModelPackageVersion: Field required",
        ),
    ],
)
def test_a_malformed_event_is_refused_naming_what_is_wrong(event: Any, message: str) -> None:
    with pytest.raises(handler.UnsupportedEvent, match=re.escape(message)):
        handler.parse_package_change(event)


def test_a_malformed_task_is_refused_naming_the_field() -> None:
    with pytest.raises(handler.UnsupportedEvent, match=r"malformed deploy task: task: Input should be"):
        handler.parse_task({"task": "explode", "plan": {}})


def test_a_version_of_another_group_is_ignored(world: World) -> None:
    other = Version.of(f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/other-models/1")
    event = package_event(other, "Approved")
    event["detail"]["ModelPackageGroupName"] = "other-models"
    assert world.deployer().on_package_change(ModelPackageStateChange.model_validate(event)).action == "ignored"


def test_rolled_back_is_raised_when_even_the_restore_does_not_serve(world: World) -> None:
    v1, v2 = world.versions
    deploy_to_staging(world, v2)
    with pytest.raises(RolledBack, match="restoring v1 left the endpoint on"):
        world.deployer().run(make_task(world, "verify", v2, target=v1, restoring=True))


def test_the_deploy_functions_refuse_a_stage_they_do_not_know(world: World) -> None:
    task = make_task(world, "update", world.versions[0]).model_copy(
        update={"stage": PlannedStage(name="qa", approval=False)}
    )
    with pytest.raises(KeyError, match="no stage 'qa' in this deploy"):
        world.deployer().run(task)


def test_stage_settings_name_their_account_by_their_deployer_role(world: World) -> None:
    assert world.settings.stage("prod").account == ACCOUNT
