"""What the deploy functions receive, as pydantic models: the event, the settings and the state machine's tasks.

- The trigger receives EventBridge's "SageMaker Model Package State Change" for this environment's
  model package group (Approved or Rejected).
- The tasks function receives the deploy state machine's task payloads: a ``task`` name, the
  ``plan`` (what is deployed, why, to which stages) and the ``stage`` it acts on.
"""

from __future__ import annotations

import re
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

PACKAGE_ARN = r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}/\d{1,9}$"
NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Lenient(BaseModel):
    # AWS adds fields to its events over time: read only what is declared.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Strict(BaseModel):
    # Our own payloads: a field nobody declared is a bug in the state machine or the caller.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageDetail(_Lenient):
    group: str = Field(alias="ModelPackageGroupName", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    version: int = Field(alias="ModelPackageVersion", ge=1)
    arn: str = Field(alias="ModelPackageArn", pattern=PACKAGE_ARN)
    status: Literal["Approved", "Rejected", "PendingManualApproval"] = Field(alias="ModelApprovalStatus")


class ModelPackageStateChange(EventBridgeModel):
    """EventBridge's event for a model package (SageMaker's documented shape)."""

    # EventBridge always sets an id: the deploy's idempotency and its execution's name come from it.
    id: str = Field(min_length=1, max_length=128)
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    detail: PackageDetail


class StageSettings(_Strict):
    """One environment the registry deploys to, as the deploy stack writes it into STAGES."""

    name: str = Field(pattern=NAME)
    name_prefix: str = Field(pattern=NAME)
    region: str = Field(min_length=1)
    stack_name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
    endpoint_name: str = Field(pattern=NAME)
    deployer_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    cloudformation_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    approval: bool
    smoke_rows: int = Field(ge=1, le=1000)
    smoke_p95_ms: int = Field(ge=1)
    kind: Literal["instance", "serverless"] = "instance"

    @property
    def account(self) -> str:
        """The stage's account (its deployer role's)."""
        return self.deployer_role_arn.split(":")[4]


class Settings(_Lenient):
    """The functions' environment variables, read once at cold start."""

    topic_arn: str = Field(alias="TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    table_name: str = Field(alias="TABLE_NAME", min_length=3, max_length=255)
    model_package_group: str = Field(alias="MODEL_PACKAGE_GROUP", min_length=1, max_length=63)
    stages: list[StageSettings] = Field(alias="STAGES", min_length=1)
    state_machine_arn: str = Field(default="", alias="STATE_MACHINE_ARN")
    approval_timeout_hours: float = Field(default=72.0, alias="APPROVAL_TIMEOUT_HOURS", gt=0)

    @field_validator("stages", mode="before")
    @classmethod
    def _json(cls, value: object) -> object:
        if isinstance(value, str):
            import json

            return json.loads(value)
        return value

    def stage(self, name: str) -> StageSettings:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r} in this deploy (stages: {', '.join(s.name for s in self.stages)})")


class Version(_Strict):
    """A model package version: its ARN and number."""

    arn: str = Field(pattern=PACKAGE_ARN)
    number: int = Field(ge=1)

    @classmethod
    def of(cls, arn: str) -> Version:
        match = re.fullmatch(PACKAGE_ARN, arn)
        if not match:
            raise ValueError(f"not a model package version ARN: {arn!r}")
        return cls(arn=arn, number=int(arn.rsplit("/", 1)[1]))


class PlannedStage(_Strict):
    name: str = Field(pattern=NAME)
    approval: bool


class Plan(_Strict):
    """One deploy: what goes where, and why. The state machine's input."""

    deploy_id: str = Field(pattern=r"^[a-z0-9]{1,16}$")
    version: Version
    reason: Literal["approved", "rollback"]
    event_id: str = Field(min_length=1, max_length=128)
    stages: list[PlannedStage] = Field(min_length=1)


class Task(_Strict):
    """A task of the deploy state machine."""

    task: Literal["turn", "update", "status", "verify", "smoke", "approval", "cleanup", "notify"]
    plan: Plan
    stage: PlannedStage | None = None
    # The version a stage task acts on: the plan's, or, restoring after a rollback, the one that serves.
    target: Version | None = None
    restoring: bool = False
    execution_arn: str = ""
    token: str = Field(default="", max_length=4096)
    outcome: Literal["", "started", "succeeded", "failed"] = ""
    error: dict[str, str] = {}
