"""One stage's endpoint, as the deploy drives it: its stack's parameters, the endpoint it really serves, calls to it.

Everything goes through the stage's deployer role: the stack is updated with its previous template
and the version's parameters (CloudFormation acts as the stage's CloudFormation role), then the
endpoint itself is read back, because SageMaker's guardrails may have rolled the update back while
CloudFormation reported it complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from model_deploy.events import StageSettings
from model_deploy.registry import PackageInfo

# The endpoint stack's parameters (stacks/endpoint/package.py defines the same names).
MODEL_PACKAGE_ARN = "ModelPackageArn"
DATA_STATISTICS_URI = "DataBaselineStatisticsUri"
DATA_CONSTRAINTS_URI = "DataBaselineConstraintsUri"
EVALUATION_URI = "ModelEvaluationUri"
DEPLOY_ID = "DeployId"

UpdateState = Literal["started", "unchanged", "busy"]
StackProgress = Literal["in_progress", "complete", "failed"]
_SETTLED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}


class StageError(RuntimeError):
    """The stage's stack or endpoint is not in a state a deploy can act on (named, with the reason)."""


@dataclass(frozen=True)
class StackState:
    status: str
    parameters: dict[str, str]
    outputs: dict[str, str]


@dataclass(frozen=True)
class Served:
    """What the endpoint really serves, read from SageMaker, not from the stack."""

    endpoint_name: str
    status: str
    endpoint_config: str
    model_name: str
    package_arn: str


@dataclass(frozen=True)
class Answer:
    """One invocation's result, as the smoke test sees it."""

    status: int
    body: str
    latency_ms: float


class Stage:
    """A stage's endpoint stack and endpoint, through clients that act as its deployer role."""

    def __init__(
        self,
        settings: StageSettings,
        *,
        cloudformation: Any,
        sagemaker: Any,
        runtime: Any,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings = settings
        self.cloudformation, self.sagemaker, self.runtime, self.clock = cloudformation, sagemaker, runtime, clock

    @classmethod
    def assume(cls, settings: StageSettings, *, session: Any, deploy_id: str, config: Any = None) -> Stage:
        """Clients for the stage, with credentials of its deployer role (in its own account)."""
        sts = session.client("sts", region_name=settings.region, config=config)
        credentials = sts.assume_role(
            RoleArn=settings.deployer_role_arn, RoleSessionName=f"deploy-{deploy_id}", DurationSeconds=3600
        )["Credentials"]
        keys = {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
            "region_name": settings.region,
            "config": config,
        }
        return cls(
            settings,
            cloudformation=session.client("cloudformation", **keys),
            sagemaker=session.client("sagemaker", **keys),
            runtime=session.client("sagemaker-runtime", **keys),
        )

    # --- the stack ---------------------------------------------------------------------------

    def stack(self) -> StackState:
        try:
            (stack,) = self.cloudformation.describe_stacks(StackName=self.settings.stack_name)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                raise StageError(
                    f"{self.settings.name}: stack {self.settings.stack_name} does not exist: deploy the environment "
                    f"first (make deploy ENV={self.settings.name})"
                ) from None
            raise
        return StackState(
            status=stack["StackStatus"],
            parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])},
            outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        )

    def update(self, package: PackageInfo, deploy_id: str) -> UpdateState:
        """Set the stack's parameters to ``package``'s (previous template, the stage's CloudFormation role).

        Returns ``unchanged`` when the stack already serves that version (a redelivered or repeated
        task), ``busy`` while another operation runs on the stack, ``started`` otherwise.
        """
        state = self.stack()
        if state.status.endswith("_IN_PROGRESS"):
            return "busy"
        if state.status not in _SETTLED:
            raise StageError(f"{self.settings.name}: stack {self.settings.stack_name} is {state.status}")
        if state.parameters.get(MODEL_PACKAGE_ARN) == package.version.arn:
            return "unchanged"
        ours = {
            MODEL_PACKAGE_ARN: package.version.arn,
            DATA_STATISTICS_URI: package.statistics_uri,
            DATA_CONSTRAINTS_URI: package.constraints_uri,
            EVALUATION_URI: package.evaluation_uri,
            DEPLOY_ID: deploy_id,
        }
        # The stack has the baseline parameters only where its environment monitors.
        ours = {key: value for key, value in ours.items() if key in state.parameters}
        parameters: list[dict[str, str | bool]] = [
            {"ParameterKey": key, "ParameterValue": value} for key, value in ours.items()
        ]
        # Every other parameter keeps its value: UpdateStack would otherwise reset it to its default.
        parameters += [
            {"ParameterKey": key, "UsePreviousValue": True} for key in sorted(state.parameters) if key not in ours
        ]
        try:
            self.cloudformation.update_stack(
                StackName=self.settings.stack_name,
                UsePreviousTemplate=True,
                Parameters=parameters,
                RoleARN=self.settings.cloudformation_role_arn,
                # The template names its roles; the deploy changes parameters, never the template.
                Capabilities=["CAPABILITY_NAMED_IAM"],
            )
        except ClientError as exc:
            if "No updates are to be performed" in str(exc):
                return "unchanged"
            raise
        return "started"

    def progress(self) -> tuple[StackProgress, str]:
        """Where the stack's update stands, and, when it failed, the first resource's reason."""
        status = self.stack().status
        if status.endswith("_IN_PROGRESS"):
            return "in_progress", status
        if status in ("UPDATE_COMPLETE", "CREATE_COMPLETE"):
            return "complete", status
        return "failed", f"stack {self.settings.stack_name} is {status}: {self._first_failure()}"

    def _first_failure(self) -> str:
        try:
            events = self.cloudformation.describe_stack_events(StackName=self.settings.stack_name)["StackEvents"]
        except ClientError as exc:
            return f"(events unreadable: {exc})"
        failures = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
        if not failures:
            return "no resource reported a failure"
        first = failures[-1]  # events are newest first
        return f"{first.get('LogicalResourceId')}: {first.get('ResourceStatusReason', 'no reason given')}"

    # --- the endpoint ------------------------------------------------------------------------

    def served(self) -> Served:
        """What the endpoint serves now (its config, that config's model, the model's package)."""
        name = self.stack().outputs.get("EndpointName") or self.settings.endpoint_name
        endpoint = self.sagemaker.describe_endpoint(EndpointName=name)
        config = endpoint["EndpointConfigName"]
        variants = self.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        model = self.sagemaker.describe_model(ModelName=variants[0]["ModelName"])
        containers = [model.get("PrimaryContainer", {}), *model.get("Containers", [])]
        packages = [c["ModelPackageName"] for c in containers if c.get("ModelPackageName")]
        return Served(
            endpoint_name=name,
            status=str(endpoint.get("EndpointStatus", "")),
            endpoint_config=config,
            model_name=str(model.get("ModelName", variants[0]["ModelName"])),
            package_arn=packages[0] if packages else "",
        )

    def invoke(self, body: str, content_type: str = "text/csv", accept: str = "text/csv") -> Answer:
        """One invocation through SageMaker's runtime; a model's own error answer is an answer, not a crash."""
        name = self.stack().outputs.get("EndpointName") or self.settings.endpoint_name
        start = self.clock()
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=name, Body=body.encode(), ContentType=content_type, Accept=accept
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = int(exc.response.get("OriginalStatusCode") or exc.response["ResponseMetadata"]["HTTPStatusCode"])
            return Answer(status, f"{error.get('Code')}: {error.get('Message')}", (self.clock() - start) * 1000)
        text = response["Body"].read().decode("utf-8", "replace")
        return Answer(200, text, (self.clock() - start) * 1000)

    def clean_up(self) -> list[str]:
        """Delete the retained endpoint configs and models that nothing serves any more.

        Kept: what the endpoint serves and what the stack names (they differ only after a rollback).
        Only this stage's ``<prefix>-v…`` names are considered; the deployer role may touch no other.
        """
        served = self.served()
        outputs = self.stack().outputs
        keep_configs = {served.endpoint_config, outputs.get("EndpointConfigName", "")}
        keep_models = {served.model_name, outputs.get("ModelName", "")}
        prefix = f"{self.settings.name_prefix}-v"
        deleted = []
        for config in self._names("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", prefix):
            if config not in keep_configs:
                self.sagemaker.delete_endpoint_config(EndpointConfigName=config)
                deleted.append(config)
        for model in self._names("list_models", "Models", "ModelName", prefix):
            if model not in keep_models:
                self.sagemaker.delete_model(ModelName=model)
                deleted.append(model)
        return deleted

    def _names(self, operation: str, key: str, field: str, prefix: str) -> list[str]:
        names = []
        for page in self.sagemaker.get_paginator(operation).paginate(NameContains=prefix):
            names += [item[field] for item in page[key] if item[field].startswith(prefix)]
        return names
