"""Template assertions for the deploy stack: the trigger, the state machine's steps, approvals, notifications.

In the shipped single-account configs dev's registry deploys to dev, staging and then, after a
person's approval, prod. In the multi-account example dev's registry deploys to staging (another
account, approval first) and prod's own registry to prod.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import Persona
from tests.infra.references import logical_id_of, referenced


def _resources(app, env: str, type_: str) -> dict[str, dict]:
    return {k: v for k, v in app.templates[env]["Deploy"]["Resources"].items() if v["Type"] == type_}


def _one(app, env: str, type_: str) -> dict:
    (resource,) = _resources(app, env, type_).values()
    return resource["Properties"]


def _definition(app, env: str) -> dict[str, Any]:
    """The state machine's definition, with CloudFormation's references in it as "<ref>"."""
    body = _one(app, env, "AWS::StepFunctions::StateMachine")["DefinitionString"]
    if isinstance(body, dict):
        _, parts = body["Fn::Join"]
        body = "".join(p if isinstance(p, str) else "<ref>" for p in parts)
    return json.loads(body)


def _functions(app, env: str) -> dict[str, dict]:
    return {
        f["Properties"]["FunctionName"]: f["Properties"] for f in _resources(app, env, "AWS::Lambda::Function").values()
    }


def test_only_the_deploying_registries_have_a_deploy(single_account, multi_account) -> None:
    assert [env for env, t in single_account.templates.items() if "Deploy" in t] == ["dev"]
    assert sorted(env for env, t in multi_account.templates.items() if "Deploy" in t) == ["dev", "prod"]


def test_an_approved_or_rejected_version_of_this_registry_starts_the_trigger(single_account) -> None:
    rule = _one(single_account, "dev", "AWS::Events::Rule")
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": ["mlops-dev-models"], "ModelApprovalStatus": ["Approved", "Rejected"]},
    }
    (target,) = rule["Targets"]
    deploy = single_account.stages["dev"].deploy
    assert referenced(single_account, "dev", "Deploy", target["Arn"]) == logical_id_of(deploy.trigger.function)
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 6 * 3600, "MaximumRetryAttempts": 8}
    dead_letters = deploy.trigger.dead_letters
    assert referenced(single_account, "dev", "Deploy", target["DeadLetterConfig"]["Arn"]) == logical_id_of(dead_letters)


def test_the_functions_know_each_stage_its_roles_and_which_waits_for_a_person(single_account) -> None:
    functions = _functions(single_account, "dev")
    assert set(functions) == {"mlops-dev-deploy-trigger", "mlops-dev-deploy-tasks"}
    for function in functions.values():
        stages = json.loads(function["Environment"]["Variables"]["STAGES"])
        assert [(s["name"], s["approval"]) for s in stages] == [("dev", False), ("staging", False), ("prod", True)]
        prod = stages[2]
        assert prod["deployer_role_arn"] == "arn:aws:iam::111111111111:role/mlops-prod-endpoint-deployer"
        assert prod["cloudformation_role_arn"] == "arn:aws:iam::111111111111:role/mlops-prod-endpoint-cloudformation"
        assert (prod["stack_name"], prod["endpoint_name"], prod["kind"]) == (
            "mlops-prod-endpoint",
            "mlops-prod-endpoint",
            "instance",
        )
        assert stages[0]["kind"] == "serverless"
        assert function["Environment"]["Variables"]["MODEL_PACKAGE_GROUP"] == "mlops-dev-models"
        assert function["Handler"].startswith("model_deploy.handler.")
        assert "KmsKeyArn" in function


def test_the_functions_may_act_only_as_the_stages_deployers_and_on_this_registry(single_account, multi_account) -> None:
    for app, env, roles in (
        (
            single_account,
            "dev",
            [f"arn:aws:iam::111111111111:role/mlops-{e}-endpoint-deployer" for e in ("dev", "prod", "staging")],
        ),
        (multi_account, "dev", ["arn:aws:iam::333333333333:role/mlops-staging-endpoint-deployer"]),
    ):
        deploy = app.stages[env].deploy
        stack, logical_id = logical_id_of(deploy.node.find_child("FunctionsPolicy"))
        statements = {
            s["Sid"]: s
            for s in app.templates[env][stack]["Resources"][logical_id]["Properties"]["PolicyDocument"]["Statement"]
        }
        assumed = statements["ActAsTheStagesDeployer"]["Resource"]
        assert (assumed if isinstance(assumed, list) else [assumed]) == roles
        assert (
            statements["ReadTheRegistry"]["Resource"]
            == f"arn:aws:sagemaker:eu-west-1:{app.stages[env].config.account}:model-package/mlops-dev-models/*"
        )


def test_the_state_machine_waits_its_turn_then_walks_the_stages_one_at_a_time(single_account) -> None:
    definition = _definition(single_account, "dev")
    states = definition["States"]
    assert definition["StartAt"] == "Start"
    # The execution announces itself first: one announcement per deploy, whatever the trigger retried.
    assert states["Start"]["Next"] == "NotifyStarted" and states["NotifyStarted"]["Next"] == "Turn"
    assert states["NotifyStarted"]["Parameters"]["outcome"] == "started"
    assert states["Turn"]["Next"] == "MyTurn?"
    assert states["WaitForTurn"]["Next"] == "Turn"
    stages = states["Stages"]
    assert stages["Type"] == "Map" and stages["MaxConcurrency"] == 1 and stages["ItemsPath"] == "$.plan.stages"
    (catch,) = stages["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "NotifyFailed"
    assert states["NotifyFailed"]["Next"] == "DeployFailed" and states["DeployFailed"]["Type"] == "Fail"
    assert stages["Next"] == "NotifySucceeded"
    inner = stages["ItemProcessor"]["States"]
    # Approval only where the stage says so, by task token, bounded by the configured timeout.
    choice = inner["NeedsApproval?"]
    assert choice["Choices"] == [{"Variable": "$.stage.approval", "BooleanEquals": True, "Next": "Approval"}]
    approval = inner["Approval"]
    assert approval["Resource"].endswith(":states:::lambda:invoke.waitForTaskToken")
    assert approval["Parameters"]["Payload"]["token.$"] == "$$.Task.Token"
    assert approval["TimeoutSeconds"] == 72 * 3600
    # Update, follow the stack, verify what is served, smoke-test, clean up.
    assert {c["StringEquals"]: c["Next"] for c in inner["Updating?"]["Choices"]} == {
        "superseded": "Superseded",
        "busy": "StackBusy",
        "started": "StackUpdating",
    }
    assert inner["Updating?"]["Default"] == "Verify"
    assert inner["Updated?"]["Default"] == "Verify"
    served = inner["Served?"]
    assert served["Choices"][0] == {
        "Variable": "$.verify.state",
        "StringEquals": "rolled_back",
        "Next": "RestoreServingVersion",
    }
    assert served["Choices"][1] == {"Variable": "$.restoring", "BooleanEquals": True, "Next": "RolledBack"}
    assert served["Default"] == "SmokeTest"
    assert inner["RestoreServingVersion"]["Parameters"]["target.$"] == "$.verify.serving"
    assert inner["RestoreServingVersion"]["Next"] == "Update"
    assert inner["SmokeTest"]["Next"] == "CleanUp" and inner["CleanUp"]["End"] is True
    # Payload-only invocations pass the payload as the parameters; the approval wraps it (waitForTaskToken).
    tasks = {
        name: s["Parameters"].get("Payload", s["Parameters"])["task"]
        for name, s in {**states, **inner}.items()
        if s["Type"] == "Task"
    }
    assert tasks == {
        "Turn": "turn",
        "NotifyStarted": "notify",
        "NotifyFailed": "notify",
        "NotifySucceeded": "notify",
        "Approval": "approval",
        "Update": "update",
        "Status": "status",
        "Verify": "verify",
        "SmokeTest": "smoke",
        "CleanUp": "cleanup",
    }


def test_the_state_machine_logs_without_payloads_and_traces(single_account) -> None:
    machine = _one(single_account, "dev", "AWS::StepFunctions::StateMachine")
    assert machine["StateMachineName"] == "mlops-dev-deploy"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    # Task tokens travel in the payloads.
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert machine["TracingConfiguration"] == {"Enabled": True}


def test_approvals_and_notifications_are_encrypted_with_the_data_key(single_account) -> None:
    stage = single_account.stages["dev"]
    data_key = logical_id_of(stage.foundation.keys.data_key)
    table = _one(single_account, "dev", "AWS::DynamoDB::Table")
    assert table["TableName"] == "mlops-dev-deploy-approvals"
    assert table["SSESpecification"]["SSEEnabled"] is True and table["SSESpecification"]["SSEType"] == "KMS"
    assert referenced(single_account, "dev", "Deploy", table["SSESpecification"]["KMSMasterKeyId"]) == data_key
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    topic = _one(single_account, "dev", "AWS::SNS::Topic")
    assert topic["TopicName"] == "mlops-dev-deploy"
    assert referenced(single_account, "dev", "Deploy", topic["KmsMasterKeyId"]) == data_key


def test_the_ml_engineer_persona_may_approve_and_nobody_else_by_default(single_account) -> None:
    stage = single_account.stages["dev"]
    policy = stage.deploy.approver_policy
    stack, logical_id = logical_id_of(policy)
    props = single_account.templates["dev"][stack]["Resources"][logical_id]["Properties"]
    assert props["ManagedPolicyName"] == "mlops-dev-deploy-approver"
    (role,) = props["Roles"]
    engineer = stage.studio.personas.roles[Persona.ML_ENGINEER]
    assert referenced(single_account, "dev", "Deploy", role) == logical_id_of(engineer)
    statements = {s["Sid"]: s for s in props["PolicyDocument"]["Statement"]}
    assert sorted(statements["Decide"]["Action"]) == ["states:SendTaskFailure", "states:SendTaskSuccess"]
    assert referenced(
        single_account, "dev", "Deploy", statements["ReadAndCloseApprovals"]["Resource"]
    ) == logical_id_of(stage.deploy.table)


@pytest.mark.parametrize(
    ("which", "env", "approvals"), [("multi_account", "dev", [True]), ("multi_account", "prod", [True])]
)
def test_the_multi_account_example_approves_before_staging_and_before_prod_which_its_own_registry_feeds(
    which, env, approvals, request
) -> None:
    app = request.getfixturevalue(which)
    stages = json.loads(_functions(app, env)[f"mlops-{env}-deploy-tasks"]["Environment"]["Variables"]["STAGES"])
    assert [s["approval"] for s in stages] == approvals
    expected_account = "333333333333" if env == "dev" else "444444444444"
    assert all(s["deployer_role_arn"].split(":")[4] == expected_account for s in stages)
