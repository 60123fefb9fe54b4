"""The deploy state machine: each approved version goes through the registry's stages, one stage at a time.

    Notify (started: the execution announces itself, once)
    ─► WaitForTurn ─► for each stage (in order, one at a time):
                        [Approval: a person, by task token]  (stages listed in deploy.approval_before)
                        Update ─► (wait, Status)* ─► Verify ─► SmokeTest ─► CleanUp
                                                      │
                                                      └ rolled back ─► Restore serving version ─► Update ─► … ─► Fail
    ─► Notify (succeeded) │ any failure ─► Notify (failed, with the error) ─► Fail

Step Functions rather than CodePipeline: a deploy changes the endpoint stack's *parameters* with its
previous template (CodePipeline's CloudFormation action always deploys a template from an
artifact), stages are a list from config walked by a Map, approvals are task tokens with their
approver recorded, and waits cost nothing while a blue/green update bakes. The steps themselves are
one Python function (``lambdas/model_deploy``), tested against a local AWS API.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.platform_stack import encrypted_log_group

POLL = cdk.Duration.seconds(30)
WAIT_FOR_TURN = cdk.Duration.minutes(1)
# Errors the tasks function raises on purpose: not retried (retrying cannot change the verdict).
STAGE_STATE = {"plan.$": "$.plan", "stage.$": "$.stage", "execution_arn.$": "$.execution_arn"}


class DeployWorkflow(Construct):
    """The state machine (``config.deploy_state_machine_name``), its role and its log group.

    Attributes:
        state_machine: the state machine.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        tasks_function: lambda_.IFunction,
        logs_key: kms.IKey,
        role: iam.IRole,
    ) -> None:
        super().__init__(scope, id_)
        deploy = config.deploy
        assert deploy is not None
        approval_timeout = cdk.Duration.minutes(round(deploy.approval_timeout_hours * 60))

        def step(
            name: str, task: str, *, stage: bool = True, result: bool = True, **extra: object
        ) -> tasks.LambdaInvoke:
            payload: dict[str, object] = {"task": task, "plan.$": "$.plan", "execution_arn.$": "$$.Execution.Id"}
            if stage:
                payload |= {"stage.$": "$.stage", "target.$": "$.target", "restoring.$": "$.restoring"}
            payload |= extra
            return tasks.LambdaInvoke(
                self,
                name,
                lambda_function=tasks_function,
                payload=sfn.TaskInput.from_object(payload),
                payload_response_only=True,
                result_path=f"$.{name.lower()}" if result else sfn.JsonPath.DISCARD,
                retry_on_service_exceptions=True,
            )

        # --- one stage ---------------------------------------------------------------------------
        prepare = sfn.Pass(
            self,
            "Prepare",
            parameters={**STAGE_STATE, "target.$": "$.plan.version", "restoring": False},
        )
        approval = tasks.LambdaInvoke(
            self,
            "Approval",
            lambda_function=tasks_function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "task": "approval",
                    "plan.$": "$.plan",
                    "stage.$": "$.stage",
                    "execution_arn.$": "$$.Execution.Id",
                    "token": sfn.JsonPath.task_token,
                }
            ),
            task_timeout=sfn.Timeout.duration(approval_timeout),
            result_path="$.approval",
            comment="A person decides with python -m pipelines.approve (the token is in the approvals table)",
        )
        update = step("Update", "update")
        wait_busy = sfn.Wait(self, "StackBusy", time=sfn.WaitTime.duration(WAIT_FOR_TURN))
        wait_stack = sfn.Wait(self, "StackUpdating", time=sfn.WaitTime.duration(POLL))
        status = step("Status", "status")
        verify = step("Verify", "verify")
        restore = sfn.Pass(
            self,
            "RestoreServingVersion",
            parameters={**STAGE_STATE, "target.$": "$.verify.serving", "restoring": True},
            comment="SageMaker rolled the update back: put the stack back on the version that serves",
        )
        rolled_back = sfn.Fail(
            self,
            "RolledBack",
            error="RolledBack",
            cause="SageMaker rolled the blue/green update back (an alarm fired); the stack serves the previous "
            "version again",
        )
        smoke = step("SmokeTest", "smoke", result=False)
        clean_up = step("CleanUp", "cleanup", result=False)
        superseded = sfn.Succeed(self, "Superseded", comment="The stage serves a newer approved version")

        verified = (
            sfn.Choice(self, "Served?")
            .when(sfn.Condition.string_equals("$.verify.state", "rolled_back"), restore.next(update))
            .when(sfn.Condition.boolean_equals("$.restoring", True), rolled_back)
            .otherwise(smoke.next(clean_up))
        )
        wait_stack.next(status).next(
            sfn.Choice(self, "Updated?")
            .when(sfn.Condition.string_equals("$.status.state", "in_progress"), wait_stack)
            .otherwise(verify.next(verified))
        )
        update.next(
            sfn.Choice(self, "Updating?")
            .when(sfn.Condition.string_equals("$.update.state", "superseded"), superseded)
            .when(sfn.Condition.string_equals("$.update.state", "busy"), wait_busy.next(update))
            .when(sfn.Condition.string_equals("$.update.state", "started"), wait_stack)
            .otherwise(verify)
        )
        one_stage = prepare.next(
            sfn.Choice(self, "NeedsApproval?")
            .when(sfn.Condition.boolean_equals("$.stage.approval", True), approval.next(update))
            .otherwise(update)
        )

        # --- the deploy --------------------------------------------------------------------------
        start = sfn.Pass(self, "Start", parameters={"plan.$": "$"})
        turn = step("Turn", "turn", stage=False)
        stages = sfn.Map(
            self,
            "Stages",
            items_path="$.plan.stages",
            max_concurrency=1,
            item_selector={
                "plan.$": "$.plan",
                "stage.$": "$$.Map.Item.Value",
                "execution_arn.$": "$$.Execution.Id",
            },
            result_path=sfn.JsonPath.DISCARD,
        )
        stages.item_processor(one_stage)
        failed = step("NotifyFailed", "notify", stage=False, result=False, outcome="failed", **{"error.$": "$.error"})
        stages.add_catch(failed.next(sfn.Fail(self, "DeployFailed", error="DeployFailed")), result_path="$.error")
        succeeded = step("NotifySucceeded", "notify", stage=False, result=False, outcome="succeeded")
        # The execution announces itself: one announcement per deploy, however often its event was
        # delivered or its start retried.
        announced = step("NotifyStarted", "notify", stage=False, result=False, outcome="started")
        definition = (
            start.next(announced)
            .next(turn)
            .next(
                sfn.Choice(self, "MyTurn?")
                .when(sfn.Condition.boolean_equals("$.turn.ready", True), stages.next(succeeded))
                .otherwise(sfn.Wait(self, "WaitForTurn", time=sfn.WaitTime.duration(WAIT_FOR_TURN)).next(turn))
            )
        )

        log_group = encrypted_log_group(self, "Logs", config=config, key=logs_key)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=config.deploy_state_machine_name,
            role=role,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            # Long enough for every approval to wait its full time, plus the updates.
            timeout=cdk.Duration.minutes(round(deploy.approval_timeout_hours * 60) * len(deploy.stages) + 24 * 60),
            tracing_enabled=True,
            # Task tokens travel in the payloads: log the states, not their data.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            comment=f"{config.name_prefix}: deploys approved model versions to {', '.join(deploy.stages)}",
        )
