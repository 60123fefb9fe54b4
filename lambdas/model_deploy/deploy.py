"""The deploy's decisions and steps, pure of Lambda: clients are passed in, so tests drive it against a local AWS.

The trigger turns a model package state change into a plan and starts the deploy state machine
with it; the state machine calls the steps below, one task at a time:

- **turn**: deploys run one at a time, oldest first (the state machine's running executions are the
  queue); a newer approval waits for the older deploy, which may be waiting for a person.
- **update**: set the stage's endpoint stack to the version (previous template, new parameters).
  A stage that already serves a newer approved version is left alone (``superseded``): deploys are
  serialized, but a slow approval must not roll a stage back to an older model.
- **status**: follow the stack update.
- **verify**: read what the endpoint really serves. SageMaker's guardrails roll a failed blue/green
  update back while CloudFormation reports the update complete; then the endpoint serves the old
  config, and the deploy restores the stack to the version that serves, then fails and says so.
- **smoke**: the version's test rows against the stage (``smoke.py``).
- **approval**: record the task token for ``python -m pipelines.approve``, and ask people by SNS.
- **cleanup**: delete retained configs and models that nothing serves.
- **notify**: the outcome, to the topic.

"Rejected" on a version that a stage serves deploys the newest approved version before it to those
stages (the documented rollback by hand), without a further approval: rejecting was the decision.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from model_deploy import smoke
from model_deploy.events import ModelPackageStateChange, Plan, PlannedStage, Settings, StageSettings, Task, Version
from model_deploy.registry import PackageInfo, Registry, RegistryError
from model_deploy.stage import Stage, StageError

StageFactory = Callable[[StageSettings, str], Stage]


class RolledBack(RuntimeError):
    """The endpoint serves the previous version after the update: SageMaker rolled it back."""


class DeployError(RuntimeError):
    """A step cannot go on (named, with the reason)."""


@dataclass(frozen=True)
class Decision:
    """What the trigger did with one event."""

    action: str  # started | duplicate | ignored | nothing_to_do
    reason: str
    execution_arn: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def deploy_id(event_id: str) -> str:
    """A short, stable id for one event's deploy: part of the names it creates and of its execution's."""
    return hashlib.sha256(event_id.encode()).hexdigest()[:12]


class Deployer:
    """Acts for one registry (model package group) and its stages."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Registry,
        stage: StageFactory,
        s3: Any,
        sns: Any,
        dynamodb: Any,
        stepfunctions: Any,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.registry, self.stage_of = settings, registry, stage
        self.s3, self.sns, self.dynamodb, self.stepfunctions, self.clock = s3, sns, dynamodb, stepfunctions, clock

    # --- the trigger -------------------------------------------------------------------------

    def on_package_change(self, event: ModelPackageStateChange) -> Decision:
        detail = event.detail
        if detail.group != self.settings.model_package_group:
            return Decision("ignored", f"group {detail.group} is not {self.settings.model_package_group}")
        version = Version(arn=detail.arn, number=detail.version)
        if detail.status == "Approved":
            stages = [PlannedStage(name=s.name, approval=s.approval) for s in self.settings.stages]
            return self._start(
                Plan(
                    deploy_id=deploy_id(event.id), version=version, reason="approved", event_id=event.id, stages=stages
                )
            )
        if detail.status == "Rejected":
            return self._roll_back(version, event.id)
        return Decision("ignored", f"version {version.number} is {detail.status}")

    def _roll_back(self, rejected: Version, event_id: str) -> Decision:
        self._stop_deploys_of(rejected)
        serving = [s for s in self.settings.stages if self._serves(s, rejected)]
        if not serving:
            decision = Decision("nothing_to_do", f"rejected version {rejected.number} is served by no stage")
            self._publish(f"Rejected v{rejected.number}: nothing deployed", decision.as_dict())
            return decision
        previous = self.registry.approved_before(rejected)
        if previous is None:
            reason = (
                f"rejected version {rejected.number} is served by {', '.join(s.name for s in serving)}, and no "
                "earlier version is approved: approve one to roll back to, or delete the endpoint"
            )
            self._publish(f"Rejected v{rejected.number}: NO version to roll back to", {"reason": reason})
            return Decision("nothing_to_do", reason)
        plan = Plan(
            deploy_id=deploy_id(event_id),
            version=previous,
            reason="rollback",
            event_id=event_id,
            stages=[PlannedStage(name=s.name, approval=False) for s in serving],
        )
        return self._start(plan)

    def _serves(self, stage: StageSettings, version: Version) -> bool:
        try:
            return self.stage_of(stage, "check").served().package_arn == version.arn
        except (ClientError, StageError, KeyError, IndexError):
            return False  # no stack, or no endpoint yet: it serves nothing

    def _stop_deploys_of(self, rejected: Version) -> None:
        """A running deploy of a version people rejected must not go on (nor hold the queue)."""
        for execution in self._running():
            described = self.stepfunctions.describe_execution(executionArn=execution["executionArn"])
            try:
                plan = Plan.model_validate_json(described.get("input", "{}"))
            except ValueError:
                continue
            if plan.version.arn == rejected.arn and plan.reason == "approved":
                self.stepfunctions.stop_execution(
                    executionArn=execution["executionArn"],
                    error="Rejected",
                    cause=f"version {rejected.number} was rejected in the registry",
                )

    def _start(self, plan: Plan) -> Decision:
        name = f"{plan.reason}-v{plan.version.number}-{plan.deploy_id}"
        # Step Functions answers a repeated start of a running execution with that execution: ask first.
        existing = self.settings.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        # The execution announces itself (its first state, NotifyStarted): a start whose answer was lost,
        # or a rerun after a failure, finds the deploy and starts no second one, and no announcement is lost.
        already = Decision("duplicate", f"deploy {name} was already started for event {plan.event_id}", existing)
        try:
            self.stepfunctions.describe_execution(executionArn=existing)
            return already
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
        try:
            response = self.stepfunctions.start_execution(
                stateMachineArn=self.settings.state_machine_arn, name=name, input=plan.model_dump_json()
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                # Started in between, under the name this event gives it (or by this call's lost first attempt).
                return already
            raise
        return Decision(
            "started",
            f"{plan.reason} deploy of version {plan.version.number} to {', '.join(s.name for s in plan.stages)}",
            response["executionArn"],
        )

    # --- the state machine's tasks -----------------------------------------------------------

    def run(self, task: Task) -> dict[str, Any]:
        """One task of the state machine; its result becomes the state's output."""
        handlers: dict[str, Callable[[Task], dict[str, Any]]] = {
            "turn": self.turn,
            "update": self.update,
            "status": self.status,
            "verify": self.verify,
            "smoke": self.smoke_test,
            "approval": self.request_approval,
            "cleanup": self.clean_up,
            "notify": self.notify,
        }
        return handlers[task.task](task)

    def _running(self) -> list[dict[str, Any]]:
        executions: list[dict[str, Any]] = []
        paginator = self.stepfunctions.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=self.settings.state_machine_arn, statusFilter="RUNNING"):
            executions += page["executions"]
        return executions

    def turn(self, task: Task) -> dict[str, Any]:
        running = sorted(self._running(), key=lambda e: (e["startDate"], e["executionArn"]))
        ahead = [e["name"] for e in running if e["executionArn"] != task.execution_arn]
        oldest = running[0]["executionArn"] if running else task.execution_arn
        if oldest == task.execution_arn:
            return {"ready": True, "waiting_for": ""}
        return {"ready": False, "waiting_for": ahead[0] if ahead else ""}

    def _stage(self, task: Task) -> tuple[StageSettings, Stage]:
        if task.stage is None:
            raise DeployError(f"task {task.task} names no stage")
        settings = self.settings.stage(task.stage.name)
        return settings, self.stage_of(settings, task.plan.deploy_id)

    def update(self, task: Task) -> dict[str, Any]:
        settings, stage = self._stage(task)
        plan = task.plan
        if task.restoring and task.target is not None:
            # Restoring the version that serves after a rollback: keep the stack true to the endpoint.
            package = self.registry.describe(task.target)
        else:
            package = self.registry.approved(plan.version)
            if plan.reason == "approved":
                newer = self._newer_served(stage, plan.version)
                if newer is not None:
                    return {"state": "superseded", "detail": f"{settings.name} serves version {newer.number}"}
        state = stage.update(package, plan.deploy_id)
        return {"state": state, "detail": f"{settings.name}: v{package.version.number} {state}"}

    def _newer_served(self, stage: Stage, version: Version) -> Version | None:
        try:
            served = stage.served().package_arn
        except (ClientError, KeyError, IndexError):
            return None  # no endpoint yet
        if not served:
            return None
        current = Version.of(served)
        if current.number <= version.number or current.arn.rsplit("/", 1)[0] != version.arn.rsplit("/", 1)[0]:
            return None
        try:
            still = self.registry.describe(current).status == "Approved"
        except (ClientError, RegistryError):
            still = False
        return current if still else None

    def status(self, task: Task) -> dict[str, Any]:
        _, stage = self._stage(task)
        state, detail = stage.progress()
        if state == "failed":
            raise StageError(detail)
        return {"state": state, "detail": detail}

    def verify(self, task: Task) -> dict[str, Any]:
        settings, stage = self._stage(task)
        expected = task.target or task.plan.version
        outputs = stage.stack().outputs
        served = stage.served()
        if served.status != "InService":
            raise StageError(f"{settings.name}: endpoint {served.endpoint_name} is {served.status}")
        if served.endpoint_config == outputs.get("EndpointConfigName") and served.package_arn == expected.arn:
            return {
                "state": "serving",
                "detail": f"{settings.name} serves v{expected.number} ({served.endpoint_config})",
            }
        if task.restoring:
            raise RolledBack(
                f"{settings.name}: restoring v{expected.number} left the endpoint on {served.endpoint_config} "
                f"({served.package_arn or 'no package'}); look at the endpoint's events"
            )
        serving = Version.of(served.package_arn) if served.package_arn else None
        return {
            "state": "rolled_back",
            "serving": serving.model_dump() if serving else None,
            "detail": (
                f"{settings.name}: SageMaker rolled the update to v{expected.number} back; the endpoint serves "
                f"{served.endpoint_config} (v{serving.number if serving else '?'}), "
                f"not {outputs.get('EndpointConfigName')}"
            ),
        }

    def smoke_test(self, task: Task) -> dict[str, Any]:
        settings, stage = self._stage(task)
        package = self.registry.describe(task.plan.version)
        rows = smoke.sample_rows(self._test_data(package), package.target, settings.smoke_rows)
        result = smoke.run(
            stage.invoke, rows, problem_type=package.problem_type or "regression", p95_ms=settings.smoke_p95_ms
        )
        if not result.passed:
            raise smoke.SmokeTestFailed(f"{settings.name}: smoke test of v{package.version.number}: {result.summary()}")
        return {"state": "passed", "detail": f"{settings.name}: {result.summary()}"}

    def _test_data(self, package: PackageInfo) -> str:
        uri = package.test_data_uri
        if not uri.startswith("s3://") or not package.target:
            raise DeployError(
                f"version {package.version.number} records no test data (metadata test_data_uri and target): "
                "it was registered by an older model build; retrain it to deploy it"
            )
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/"))
        keys = sorted(item["Key"] for item in listed.get("Contents", []) if item["Key"].endswith(".csv"))
        if not keys:
            raise DeployError(f"no CSV under the registered test data {uri}")
        body = self.s3.get_object(Bucket=bucket, Key=keys[0], Range=f"bytes=0-{smoke.MAX_TEST_BYTES - 1}")["Body"]
        return str(body.read().decode("utf-8", "replace"))

    def request_approval(self, task: Task) -> dict[str, Any]:
        if task.stage is None or not task.token:
            raise DeployError("an approval needs a stage and the task token")
        plan, now = task.plan, self.clock()
        timeout = self.settings.approval_timeout_hours * 3600
        self.dynamodb.put_item(
            TableName=self.settings.table_name,
            Item={
                "id": {"S": f"approval#{task.stage.name}"},
                "token": {"S": task.token},
                "deploy_id": {"S": plan.deploy_id},
                "version": {"N": str(plan.version.number)},
                "package_arn": {"S": plan.version.arn},
                "execution_arn": {"S": task.execution_arn},
                "requested_at": {"S": _iso(now)},
                "expiration": {"N": str(int(now + timeout + 86_400))},
            },
        )
        command = (
            f"python -m pipelines.approve --config config/<env>.yaml --stage {task.stage.name} "
            f"--version {plan.version.number} [--reject --reason '...']"
        )
        self._publish(
            f"Approve v{plan.version.number} for {task.stage.name}?",
            {
                "stage": task.stage.name,
                "version": plan.version.number,
                "package_arn": plan.version.arn,
                "execution_arn": task.execution_arn,
                "expires_in_hours": self.settings.approval_timeout_hours,
                "approve_with": command,
            },
        )
        return {"state": "requested", "detail": f"approval for {task.stage.name} requested"}

    def clean_up(self, task: Task) -> dict[str, Any]:
        settings, stage = self._stage(task)
        deleted = stage.clean_up()
        return {"state": "cleaned", "detail": f"{settings.name}: deleted {', '.join(deleted) or 'nothing'}"}

    def notify(self, task: Task) -> dict[str, Any]:
        plan = task.plan
        message: dict[str, Any] = {
            "outcome": task.outcome,
            "version": plan.version.number,
            "package_arn": plan.version.arn,
            "reason": plan.reason,
            "stages": [s.name for s in plan.stages],
            "execution_arn": task.execution_arn,
        }
        if task.error:
            message["error"] = task.error.get("Error", "")
            message["cause"] = _cause(task.error.get("Cause", ""))
        verdict = {"started": "started", "succeeded": "succeeded"}.get(task.outcome, "FAILED")
        self._publish(f"Deploy {verdict}: v{plan.version.number} ({plan.reason})", message)
        return {"state": "notified", "detail": verdict}

    def _publish(self, subject: str, message: dict[str, Any]) -> None:
        self.sns.publish(
            TopicArn=self.settings.topic_arn,
            Subject=subject[:100],
            Message=json.dumps(message, sort_keys=True, default=str),
        )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cause(cause: str) -> str:
    """Step Functions passes a Lambda error's cause as JSON ({errorMessage, errorType, ...}): keep the message."""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return f"{parsed.get('errorType', 'Error')}: {parsed['errorMessage']}"
    return cause
