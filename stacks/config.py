"""Per-environment configuration: one YAML file per environment, validated at synth.

A bad file fails before any construct is built, with one message that names the
file, the field and the problem. A missing file is an error, never a default.
"""

from __future__ import annotations

import ipaddress
import math
import re
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# An environment is a config file: config/<name>.yaml. The name becomes the CDK Stage's id, hence the
# CLI's selector ('<name>/*') and the artifact's folder, and appears in tags and descriptions: lowercase
# letters, digits and inner hyphens, 2-16 characters, are safe in all of them.
ENVIRONMENT_NAME = r"^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])$"
ENVIRONMENT_NAME_RULE = "2-16 lowercase letters, digits and hyphens, starting with a letter and not ending in a hyphen"
# The usual promotion order lists first; any other environment follows, alphabetically.
CONVENTIONAL_ORDER = ("dev", "staging", "prod")
MAX_YAML_DEPTH = 32  # the deepest shipped file has 4 levels; pyyaml itself recurses ~1,000 levels into a crash

AccountId = Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit AWS account id")]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")]
AvailabilityZone = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d[a-z]$")]


class ConfigError(Exception):
    """A configuration file is missing or invalid; the message names file, field and problem."""


class CrossFieldError(ValueError):
    """A rule over several fields: the error is reported at those fields, not at their parent."""

    def __init__(self, fields: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.fields = fields


class _Strict(BaseModel):
    # Unknown keys are typos until proven otherwise: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemovalPolicyName(StrEnum):
    """What happens to stateful resources when the stack is deleted."""

    DESTROY = "destroy"
    RETAIN = "retain"


InterfaceEndpoint = Literal[
    "sagemaker_api",
    "sagemaker_runtime",
    "sagemaker_studio",
    "sagemaker_notebook",
    "ecr_api",
    "ecr_docker",
    "logs",
    "monitoring",
    "sts",
    "kms",
    "ssm",
]
INTERFACE_ENDPOINTS: tuple[InterfaceEndpoint, ...] = typing.get_args(InterfaceEndpoint)


class _Endpoints(_Strict):
    """Which interface endpoints the VPC gets, and in how many zones: most of an idle environment's cost."""

    interface_endpoints: list[InterfaceEndpoint] = Field(default_factory=lambda: list(INTERFACE_ENDPOINTS))
    endpoint_zones: int | None = Field(
        default=None, ge=1, description="Interface endpoints in the first N zones only (default: every zone)"
    )

    @field_validator("interface_endpoints")
    @classmethod
    def _unique_endpoints(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("interface endpoints must be distinct")
        return value

    @model_validator(mode="after")
    def _endpoint_zones_exist(self) -> _Endpoints:
        zones = len(getattr(self, "availability_zones", []))
        if self.endpoint_zones is not None and self.endpoint_zones > zones:
            raise CrossFieldError(
                ("endpoint_zones", "availability_zones"),
                f"endpoint_zones {self.endpoint_zones} is more than the {zones} availability zones",
            )
        return self


class CreatedNetwork(_Endpoints):
    """A VPC made by the platform: private isolated subnets only, no internet route."""

    mode: Literal["create"]
    cidr: str = "10.0.0.0/16"
    availability_zones: list[AvailabilityZone] = Field(min_length=2, max_length=6)
    subnet_cidr_mask: int = Field(default=20, ge=16, le=28)
    flow_log_retention_days: int = Field(default=365, ge=1)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        net = ipaddress.ip_network(value, strict=True)
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"VPC CIDR prefix must be between /16 and /24, got /{net.prefixlen}")
        return value

    @field_validator("availability_zones")
    @classmethod
    def _unique_zones(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("availability zones must be distinct")
        return value

    @model_validator(mode="after")
    def _subnets_fit(self) -> CreatedNetwork:
        # One private subnet of /subnet_cidr_mask per zone, allocated from the VPC's range (stacks/foundation).
        prefix = ipaddress.ip_network(self.cidr).prefixlen
        zones = len(self.availability_zones)
        if self.subnet_cidr_mask < prefix or 2 ** (self.subnet_cidr_mask - prefix) < zones:
            fits = 2 ** (self.subnet_cidr_mask - prefix) if self.subnet_cidr_mask >= prefix else 0
            needed = prefix + math.ceil(math.log2(zones))
            raise CrossFieldError(
                ("cidr", "subnet_cidr_mask", "availability_zones"),
                f"the VPC {self.cidr} holds {fits} subnet(s) of /{self.subnet_cidr_mask} but {zones} zones need one "
                f"each: use a subnet_cidr_mask of at least /{needed}, a larger cidr, or fewer zones",
            )
        return self


class ImportedNetwork(_Endpoints):
    """An existing VPC, given by explicit ids (never looked up at synth)."""

    mode: Literal["import"]
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    cidr: str
    availability_zones: list[AvailabilityZone] = Field(min_length=2)
    private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(min_length=2)
    private_route_table_ids: list[Annotated[str, Field(pattern=r"^rtb-[0-9a-f]{8,17}$")]] = Field(min_length=2)
    create_endpoints: bool = Field(default=True, description="False when the VPC already has the endpoints")
    flow_log_retention_days: int = Field(default=365, ge=1)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        ipaddress.ip_network(value, strict=True)
        return value

    @model_validator(mode="after")
    def _one_subnet_per_zone(self) -> ImportedNetwork:
        counts = {len(self.availability_zones), len(self.private_subnet_ids), len(self.private_route_table_ids)}
        if len(counts) != 1:
            raise CrossFieldError(
                ("availability_zones", "private_subnet_ids", "private_route_table_ids"),
                "availability_zones, private_subnet_ids and private_route_table_ids must have the same length "
                "(one subnet and route table per zone)",
            )
        return self


class Retention(_Strict):
    """Removal and retention of stateful resources."""

    removal_policy: RemovalPolicyName
    auto_delete_objects: bool = Field(
        default=False, description="Empty buckets and repositories on stack deletion (removal_policy destroy only)"
    )
    log_retention_days: int = Field(default=365, ge=1, le=3653)
    noncurrent_version_expiration_days: int = Field(default=90, ge=1)
    abort_incomplete_multipart_upload_days: int = Field(default=7, ge=1)
    untagged_image_expiration_days: int = Field(default=14, ge=1)
    key_pending_window_days: int = Field(default=30, ge=7, le=30)

    @model_validator(mode="after")
    def _auto_delete_needs_destroy(self) -> Retention:
        if self.auto_delete_objects and self.removal_policy is not RemovalPolicyName.DESTROY:
            raise CrossFieldError(
                ("auto_delete_objects", "removal_policy"), "auto_delete_objects: true requires removal_policy: destroy"
            )
        return self


class Persona(StrEnum):
    """What a Studio user may do; each persona has its own execution role."""

    DATA_SCIENTIST = "data_scientist"
    ML_ENGINEER = "ml_engineer"


class StudioUser(_Strict):
    """One Studio user profile."""

    # SageMaker's user profile name pattern.
    name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    persona: Persona


class Studio(_Strict):
    """The SageMaker domain for data scientists."""

    enabled: bool = True
    # SageMaker accepts idle timeouts from 60 minutes to one year.
    idle_timeout_minutes: int = Field(default=120, ge=60, le=525600)
    home_efs_retention: Literal["retain", "delete"] = "retain"
    users: list[StudioUser] = []

    @field_validator("users")
    @classmethod
    def _unique_users(cls, users: list[StudioUser]) -> list[StudioUser]:
        seen: dict[str, int] = {}
        for index, user in enumerate(users):
            if user.name in seen:
                raise ValueError(f"duplicate user {user.name!r} at entries {seen[user.name]} and {index}")
            seen[user.name] = index
        return users


SourceKind = Literal["codecommit", "codeconnections", "github_actions"]
INSTANCE_TYPE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"


class ModelBuildSource(_Strict):
    """Where the model-build code lives, and which pushes start a build."""

    kind: SourceKind
    # codecommit: the repository the stack creates; otherwise "owner/name" on the git host.
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")
    # A push starts a build only when it touches one of these paths (CodeConnections and GitHub Actions).
    file_paths: list[str] = ["ml_code/**", "pipelines/**", "config/**"]
    connection_arn: str | None = Field(
        default=None,
        pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[0-9a-f-]{36}$",
    )

    @model_validator(mode="after")
    def _kind_needs(self) -> ModelBuildSource:
        if self.kind == "codeconnections" and not self.connection_arn:
            raise CrossFieldError(
                ("kind", "connection_arn"),
                "kind codeconnections needs connection_arn (the CodeConnections connection to GitHub)",
            )
        if self.kind != "codeconnections" and self.connection_arn:
            raise CrossFieldError(
                ("kind", "connection_arn"), f"connection_arn is only used with kind codeconnections, not {self.kind}"
            )
        if self.kind != "codecommit" and "/" not in self.repository:
            raise CrossFieldError(
                ("kind", "repository"), f"kind {self.kind} needs repository as owner/name, got {self.repository!r}"
            )
        if self.kind == "codecommit" and "/" in self.repository:
            raise CrossFieldError(("kind", "repository"), "kind codecommit needs a repository name without an owner")
        return self


ProblemType = Literal["regression", "binary", "multiclass"]
# The shipped sample (UCI Abalone): its target, and a test-RMSE bar the searched models clear.
SAMPLE_DATA_KEY = "abalone/abalone.csv"
SAMPLE_TARGET = "rings"
SAMPLE_MAX_RMSE = 3.0
# Classification metrics lie in [0, 1] whatever the data, so they have defaults; RMSE is in the target's units.
DEFAULT_THRESHOLDS: dict[str, float] = {"binary": 0.75, "multiclass": 0.7}
METRIC_OF = {"regression": "maximum test RMSE", "binary": "minimum test AUC", "multiclass": "minimum weighted F1"}


class PipelineDefaults(_Strict):
    """Default values of the SageMaker Pipeline's parameters; each can be overridden per execution.

    ``target`` and ``metric_threshold`` are filled in only where they can be known: the target
    of the shipped sample data, the sample's RMSE bar, a classification metric's default.
    Elsewhere they are required, so that no pipeline gates on a threshold it can never meet.
    """

    target: str = Field(min_length=1)
    problem_type: ProblemType = "regression"
    input_data_key: str = Field(default=SAMPLE_DATA_KEY, min_length=1, description="key in the data bucket")
    processing_instance_type: str = Field(default="ml.m5.xlarge", pattern=INSTANCE_TYPE)
    processing_instance_count: int = Field(default=1, ge=1, le=100)
    training_instance_type: str = Field(default="ml.m5.xlarge", pattern=INSTANCE_TYPE)
    training_instance_count: int = Field(default=1, ge=1, le=100)
    # Regression: the test RMSE must be at most this. Classification: AUC / weighted F1 at least this.
    metric_threshold: float = Field(gt=0, allow_inf_nan=False)
    time_budget_seconds: int = Field(default=600, ge=10)
    # Large data: preprocess with Spark (SageMaker's PySparkProcessor) on ProcessingInstanceCount instances.
    spark_preprocessing: bool = False

    @model_validator(mode="before")
    @classmethod
    def _fill_what_can_be_known(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        problem = data.get("problem_type", "regression")
        sample = data.get("input_data_key", SAMPLE_DATA_KEY) == SAMPLE_DATA_KEY
        if "target" not in data:
            if not (sample and problem == "regression"):
                raise CrossFieldError(
                    ("target", "problem_type", "input_data_key"),
                    f"target is required: the column to predict cannot be inferred for a {problem} model of "
                    f"{data.get('input_data_key', SAMPLE_DATA_KEY)!r} (only the sample data {SAMPLE_DATA_KEY!r} "
                    f"has a known target, {SAMPLE_TARGET!r}, for regression)",
                )
            data["target"] = SAMPLE_TARGET
        if "metric_threshold" not in data:
            if problem in DEFAULT_THRESHOLDS:
                data["metric_threshold"] = DEFAULT_THRESHOLDS[problem]
            elif problem == "regression" and sample and data["target"] == SAMPLE_TARGET:
                data["metric_threshold"] = SAMPLE_MAX_RMSE
            elif problem == "regression" and isinstance(data["target"], str) and data["target"]:
                raise CrossFieldError(
                    ("metric_threshold", "problem_type", "target"),
                    f"metric_threshold is required: the {METRIC_OF['regression']} is in the units of "
                    f"{data['target']!r}, and only the sample data's has a default ({SAMPLE_MAX_RMSE})",
                )
        return data

    @model_validator(mode="after")
    def _threshold_in_range(self) -> PipelineDefaults:
        if self.problem_type != "regression" and not 0 < self.metric_threshold <= 1:
            raise CrossFieldError(
                ("metric_threshold", "problem_type"),
                f"metric_threshold {self.metric_threshold} is out of range for problem_type {self.problem_type}: "
                f"the gate is a {METRIC_OF[self.problem_type]}, which lies between 0 and 1 (a model could never pass)",
            )
        return self


class ModelBuild(_Strict):
    """The model-build CI/CD: source, CodePipeline (or GitHub Actions), and the SageMaker Pipeline."""

    enabled: bool = True
    source: ModelBuildSource
    pipeline: PipelineDefaults = Field(default_factory=lambda: PipelineDefaults.model_validate({}))


# --- deploy, endpoints and monitoring (issues 14 and 10) ---
# The endpoint's one production variant. Deployment guardrails (blue/green) need the same variant name in
# the new endpoint config, and autoscaling is registered on it: it never changes.
ENDPOINT_VARIANT = "primary"
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class EndpointKind(StrEnum):
    """Real-time instances (autoscaled, captured, monitored) or serverless (nothing idle, nothing captured)."""

    INSTANCE = "instance"
    SERVERLESS = "serverless"


class Autoscaling(_Strict):
    """Target tracking on invocations per instance, on the fixed variant (it survives model updates).

    SageMaker refuses to change an autoscaled variant's instance type: change ``instance_type`` in two
    deploys, the first with ``enabled: false`` (CloudFormation deregisters the variant), the second
    with the new type and ``enabled: true``.
    """

    enabled: bool = True
    min_instances: int = Field(default=1, ge=1, le=100)
    max_instances: int = Field(default=2, ge=1, le=100)
    # SageMakerVariantInvocationsPerInstance: invocations per instance per minute.
    invocations_per_instance: int = Field(default=1000, ge=1, le=1_000_000)
    scale_in_cooldown_seconds: int = Field(default=300, ge=0, le=3600)
    scale_out_cooldown_seconds: int = Field(default=60, ge=0, le=3600)

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_instances > self.max_instances:
            raise CrossFieldError(
                ("min_instances", "max_instances"),
                f"min_instances {self.min_instances} is above max_instances {self.max_instances}",
            )
        return self


class Serverless(_Strict):
    """A serverless endpoint's size: it costs nothing idle (cold starts instead)."""

    memory_mb: int = 2048
    max_concurrency: int = Field(default=5, ge=1, le=200)

    @field_validator("memory_mb")
    @classmethod
    def _memory_allowed(cls, value: int) -> int:
        if value not in SERVERLESS_MEMORY_MB:
            raise ValueError(f"memory_mb must be one of SageMaker's sizes {SERVERLESS_MEMORY_MB}, got {value}")
        return value


class DataCapture(_Strict):
    """Requests and responses written to the monitoring bucket (with the data key) for the monitor."""

    enabled: bool = True
    sampling_percentage: int = Field(default=100, ge=1, le=100)


class TrafficShift(StrEnum):
    """How a blue/green update moves traffic to the new fleet (SageMaker deployment guardrails)."""

    CANARY = "canary"
    LINEAR = "linear"
    ALL_AT_ONCE = "all_at_once"


class Rollout(_Strict):
    """Blue/green update with automatic rollback on the endpoint's alarms (instance endpoints)."""

    traffic_shift: TrafficShift = TrafficShift.CANARY
    # Canary: the share of capacity that takes traffic first. Linear: the share added at each step.
    step_percent: int = Field(default=10, ge=1, le=50)
    wait_minutes: int = Field(default=5, ge=0, le=60, description="between traffic steps (WaitIntervalInSeconds)")
    bake_minutes: int = Field(default=10, ge=0, le=60, description="all traffic on green before blue is removed")
    # Rollback alarms: any invocation 5xx, model latency p99 above this, or 4xx above this share of requests.
    max_model_latency_ms: int = Field(default=1000, ge=1, le=600_000)
    max_4xx_percent: float = Field(default=5.0, gt=0, le=100)


class SmokeTest(_Strict):
    """What a deploy checks before a stage counts as deployed: rows from the registered test data."""

    rows: int = Field(default=20, ge=1, le=1000)
    p95_latency_ms: int = Field(default=500, ge=1, le=60_000)


class Endpoint(_Strict):
    """The environment's real-time endpoint. Its model comes from a deploy, never from this file."""

    kind: EndpointKind = EndpointKind.INSTANCE
    instance_type: str = Field(default="ml.m5.large", pattern=INSTANCE_TYPE)
    autoscaling: Autoscaling = Autoscaling()
    serverless: Serverless = Serverless()
    data_capture: DataCapture = DataCapture()
    rollout: Rollout = Rollout()
    smoke_test: SmokeTest = SmokeTest()
    # Who hears when the endpoint's health alarms (5xx, latency, 4xx share) change state.
    alarm_emails: list[Annotated[str, Field(pattern=EMAIL, max_length=254)]] = []

    @model_validator(mode="after")
    def _serverless_captures_nothing(self) -> Endpoint:
        if self.kind == EndpointKind.SERVERLESS and self.data_capture.enabled:
            raise CrossFieldError(
                ("kind", "data_capture.enabled"),
                "a serverless endpoint cannot capture data (SageMaker supports no data capture, Model Monitor, "
                "VPC or KMS volume key on serverless endpoints): set data_capture.enabled: false, or kind: instance",
            )
        return self


class MonitoringEngine(StrEnum):
    """Who runs the scheduled drift and quality check: both write the same files and metrics."""

    PLATFORM = "platform"  # ml_code.monitor in a SageMaker Processing job the platform schedules
    MODEL_MONITOR = "model_monitor"  # SageMaker Model Monitor schedules (accounts that have the service)


# The platform engine publishes its drift and quality metrics here (Model Monitor publishes into AWS's own
# namespaces, DATA_METRICS_NAMESPACE and MODEL_METRICS_NAMESPACE); both engines' violation counts go here too.
MONITORING_NAMESPACE = "AWS-MLOps/Monitoring"
MODEL_MONITOR_DATA_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_MONITOR_MODEL_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
MonitoringCheck = Literal["data-quality", "model-quality"]


class Monitoring(_Strict):
    """Scheduled data-quality (and, with ground truth, model-quality) checks of the endpoint's captured traffic."""

    engine: MonitoringEngine = MonitoringEngine.PLATFORM
    schedule: Literal["hourly", "daily"] = "hourly"
    instance_type: str = Field(default="ml.m5.large", pattern=INSTANCE_TYPE)
    volume_size_gb: int = Field(default=30, ge=1, le=16384)
    # Model quality alarms when the live metric is worse than the registered evaluation's by more than this share:
    # an error metric (rmse, mae) above registered * (1 + x), a score (accuracy, f1) below registered * (1 - x).
    max_quality_degradation: float = Field(default=0.1, gt=0, lt=1)
    # A feature has drifted when the L-infinity distance between its baseline and live distributions is above
    # this (numeric and categorical features alike). Unset: the registered constraints' comparison thresholds
    # (Model Monitor's default, 0.1). Both engines read it from the deployed copy of constraints.json.
    drift_threshold: float | None = Field(default=None, gt=0, lt=1)
    # Model quality needs labels: turn it on where ground truth arrives under ground_truth_prefix.
    model_quality: bool = False
    # Labels for an hour's inferences are complete this long after it: model quality checks the window that
    # ended this many hours ago (Model Monitor's EndTimeOffset). At most 5 days: the platform engine reads the
    # labels' day folders as job inputs, and a job takes at most 10 inputs.
    ground_truth_delay_hours: int = Field(default=24, ge=1, le=120)
    # Alarms start a retrain of the model build that deployed here (see deploy.retrain_cooldown_hours).
    retrain: bool = True

    @property
    def checks(self) -> tuple[MonitoringCheck, ...]:
        """The checks that run: data quality always, model quality where ground truth is expected."""
        return ("data-quality", "model-quality") if self.model_quality else ("data-quality",)

    @property
    def period_hours(self) -> int:
        """The window each run checks (and the alarms' period): an hour or a day."""
        return 1 if self.schedule == "hourly" else 24


class Deploy(_Strict):
    """Where this environment's approved models go: its registry feeds these environments' endpoints, in order."""

    stages: list[Annotated[str, Field(pattern=ENVIRONMENT_NAME)]] = Field(min_length=1, max_length=10)
    # A person approves before these stages (default: the last one, production).
    approval_before: list[Annotated[str, Field(pattern=ENVIRONMENT_NAME)]] | None = None
    notify_emails: list[Annotated[str, Field(pattern=EMAIL, max_length=254)]] = []
    # A version waiting for a person this long is not deployed further; the deploy fails and says so.
    approval_timeout_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    retrain_cooldown_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"each environment deploys once: {', '.join(repeated)} repeated")
        return value

    @model_validator(mode="after")
    def _approvals_are_stages(self) -> Deploy:
        unknown = [name for name in self.approval_before or [] if name not in self.stages]
        if unknown:
            raise CrossFieldError(
                ("approval_before", "stages"), f"approval_before names {', '.join(unknown)}, not in stages"
            )
        return self

    @property
    def approvals(self) -> list[str]:
        """The stages a person approves before (the last stage when approval_before is not given)."""
        return list(self.approval_before) if self.approval_before is not None else [self.stages[-1]]


# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


# How long CI follows a SageMaker Pipeline execution (``pipelines.run --wait``), and how long the
# credentials that do so must last: the wait plus an hour for the upsert and the start. The GitHub
# role's maximum session and the sample workflow's credentials are this long (a test checks both).
PIPELINE_WAIT_HOURS = 6
RUNNER_SESSION_HOURS = PIPELINE_WAIT_HOURS + 1


def ecr_registry(account: str, region: str) -> str:
    """An account's ECR registry host in a region; China's regions use the ``amazonaws.com.cn`` suffix."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


class EnvironmentConfig(_Strict):
    """Everything that differs between environments (dev, staging, prod, or any other)."""

    name: str = Field(pattern=ENVIRONMENT_NAME)
    account: AccountId
    region: Region
    tooling_account: AccountId | None = Field(
        default=None,
        description="Multi-account: an account that may read the registry, images and artifacts; it deploys nothing",
    )
    name_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}[a-z0-9]$")
    networking: CreatedNetwork | ImportedNetwork = Field(discriminator="mode")
    retention: Retention
    termination_protection: bool = False
    powertools_version: str = Field(
        default="3.37.0", pattern=r"^\d+\.\d+\.\d+$", description="Powertools for AWS Lambda layer, resolved at deploy"
    )
    studio: Studio = Studio()
    model_build: ModelBuild | None = None
    endpoint: Endpoint | None = Field(default=None, description="a real-time endpoint, deployed to by a deploy")
    monitoring: Monitoring | None = Field(default=None, description="needs an instance endpoint with data capture")
    deploy: Deploy | None = Field(default=None, description="this registry's approved models go to these stages")
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=256)]] = {}
    # --- security (issue 8) ---
    owns_sagemaker_log_groups: bool = Field(
        default=False,
        description=(
            "Create SageMaker's account-wide job and Studio log groups (/aws/sagemaker/TrainingJobs, "
            "ProcessingJobs, studio) in this environment's stack, with the logs key and its retention. "
            "One environment per account; deploy it before any job runs, or SageMaker creates them first "
            "(no key, no expiry) and the deploy fails on the existing group."
        ),
    )

    @field_validator("retention")
    @classmethod
    def _log_retention_allowed(cls, value: Retention) -> Retention:
        if value.log_retention_days not in LOG_RETENTION_DAYS:
            raise CrossFieldError(
                ("log_retention_days",), f"log_retention_days must be one of CloudWatch's values {LOG_RETENTION_DAYS}"
            )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> EnvironmentConfig:
        if self.tooling_account == self.account:
            raise CrossFieldError(
                ("tooling_account", "account"),
                "tooling_account must differ from account (omit it for a single-account setup)",
            )
        if self.networking.flow_log_retention_days not in LOG_RETENTION_DAYS:
            raise CrossFieldError(
                ("networking.flow_log_retention_days",),
                f"flow_log_retention_days must be one of CloudWatch's values {LOG_RETENTION_DAYS}",
            )
        for zone in self.networking.availability_zones:
            if not zone.startswith(self.region):
                raise CrossFieldError(
                    ("networking.availability_zones", "region"),
                    f"availability zone {zone!r} is not in region {self.region!r}",
                )
        if self.monitoring is not None:
            if self.endpoint is None:
                raise CrossFieldError(("monitoring", "endpoint"), "monitoring needs an endpoint section to monitor")
            if not self.endpoint.data_capture.enabled:
                raise CrossFieldError(
                    ("monitoring", "endpoint.data_capture.enabled"),
                    "monitoring reads the endpoint's captured traffic: it needs endpoint.data_capture.enabled "
                    "(and so an instance endpoint; serverless endpoints capture nothing)",
                )
        if self.deploy is not None and (self.model_build is None or not self.model_build.enabled):
            raise CrossFieldError(
                ("deploy", "model_build"), "deploy sends this environment's registered models: it needs model_build"
            )
        return self

    @property
    def ssm_prefix(self) -> str:
        """Root of the SSM parameters through which other stacks and the ML code find resources."""
        return f"/{self.name_prefix}"

    @property
    def model_package_group_name(self) -> str:
        """The environment's model registry group (created by the model-build stack)."""
        return f"{self.name_prefix}-models"

    @property
    def batch_pipeline_name(self) -> str:
        """The SageMaker Pipeline that scores an S3 prefix with an approved model (``pipelines.batch``)."""
        return f"{self.name_prefix}-batch"

    @property
    def build_pipeline_name(self) -> str:
        """The SageMaker Pipeline that trains, evaluates and registers the model."""
        return f"{self.name_prefix}-model-build"

    @property
    def pipeline_name_prefix(self) -> str:
        """SageMaker Pipelines of this environment are named with this prefix."""
        return f"{self.name_prefix}-"

    # The rest of the platform's names. This class is their one home: the stacks create the
    # resources under these names and publish them as discovery parameters; the pipeline
    # runner reads the parameters at run time (it never derives a name itself).

    def bucket_name(self, purpose: str) -> str:
        """``<prefix>-<purpose>-<account>-<region>``: data, artifacts, monitoring, access-logs."""
        return f"{self.name_prefix}-{purpose}-{self.account}-{self.region}"

    def repository_name(self, image: str) -> str:
        """The ECR repository of one image: training or inference."""
        return f"{self.name_prefix}/{image}"

    def discovery_parameter(self, key: str) -> str:
        """The SSM parameter a stack publishes under ``key`` (e.g. ``foundation/s3/data-bucket``)."""
        return f"{self.ssm_prefix}/{key}"

    @property
    def partition(self) -> str:
        """The AWS partition of the region, for the few ARNs built outside CloudFormation."""
        if self.region.startswith("cn-"):
            return "aws-cn"
        return "aws-us-gov" if self.region.startswith("us-gov-") else "aws"

    @property
    def registry(self) -> str:
        """This account's ECR registry in the region (images are ``<registry>/<repository_name>``)."""
        return ecr_registry(self.account, self.region)

    @property
    def github_role_name(self) -> str:
        """The role GitHub Actions assumes (source kind ``github_actions``)."""
        return f"{self.name_prefix}-github-model-build"

    @property
    def pipeline_role_name(self) -> str:
        """The role the SageMaker Pipeline and its jobs run as."""
        return f"{self.name_prefix}-sagemaker-pipeline"

    @property
    def ci_pipeline_name(self) -> str:
        """The CodePipeline of the model build (CodeCommit or CodeConnections sources)."""
        return f"{self.name_prefix}-model-build"

    @property
    def ci_artifact_prefix(self) -> str:
        """Where CodePipeline keeps the CI pipeline's artifacts: the first 20 characters of its name."""
        return self.ci_pipeline_name[:20]

    @property
    def endpoint_name(self) -> str:
        """The environment's real-time endpoint: fixed, so updates are in place and autoscaling survives."""
        return f"{self.name_prefix}-endpoint"

    @property
    def endpoint_stack_name(self) -> str:
        """The CloudFormation stack holding the endpoint (a deploy updates its ModelPackageArn parameter)."""
        return f"{self.name_prefix}-endpoint"

    @property
    def endpoint_model_role_name(self) -> str:
        """The role the endpoint's model runs as (reads the model artifact, pulls the image)."""
        return f"{self.name_prefix}-endpoint-model"

    @property
    def endpoint_cloudformation_role_name(self) -> str:
        """The CloudFormation service role a deploy passes when it updates the endpoint stack."""
        return f"{self.name_prefix}-endpoint-cloudformation"

    @property
    def endpoint_deployer_role_name(self) -> str:
        """The role the source environment's deploy assumes to update this environment's endpoint."""
        return f"{self.name_prefix}-endpoint-deployer"

    @property
    def deploy_state_machine_name(self) -> str:
        """The state machine that deploys this environment's approved models to its stages."""
        return f"{self.name_prefix}-deploy"

    @property
    def deploy_role_name(self) -> str:
        """The deploy state machine's role: the one principal the stages' deployer roles trust."""
        return f"{self.name_prefix}-deploy"

    @property
    def deploy_functions_role_name(self) -> str:
        """The deploy's Lambda functions' role (smoke test, verify): the other principal stages trust."""
        return f"{self.name_prefix}-deploy-functions"

    @property
    def endpoint_alarm_topic_name(self) -> str:
        """The topic the endpoint's health alarms notify (its own key: CloudWatch must use it)."""
        return f"{self.name_prefix}-endpoint-alarms"

    @property
    def deploy_topic_name(self) -> str:
        """The KMS-encrypted topic that announces deploys, asks for approvals and reports failures."""
        return f"{self.name_prefix}-deploy"

    @property
    def deploy_table_name(self) -> str:
        """The table holding the approvals a deploy waits for (the task token, the version, who decided)."""
        return f"{self.name_prefix}-deploy-approvals"

    @property
    def deploy_trigger_function_name(self) -> str:
        """The function EventBridge sends model package state changes to: it starts the deploy."""
        return f"{self.name_prefix}-deploy-trigger"

    @property
    def deploy_tasks_function_name(self) -> str:
        """The function the deploy state machine runs its steps with (update, verify, smoke test...)."""
        return f"{self.name_prefix}-deploy-tasks"

    @property
    def capture_prefix(self) -> str:
        """Where, in the monitoring bucket, the endpoint's data capture lands (then endpoint/variant/yyyy/mm/dd/hh)."""
        return "capture"

    @property
    def ground_truth_prefix(self) -> str:
        """Where, in the monitoring bucket, ground-truth labels for the endpoint's inferences are put."""
        return f"ground-truth/{self.endpoint_name}"

    @property
    def monitoring_report_prefix(self) -> str:
        """Where, in the monitoring bucket, each monitoring run writes statistics and violations."""
        return f"reports/{self.endpoint_name}"

    @property
    def retrain_function_name(self) -> str:
        """The function that starts a retrain when a stage's monitoring alarm fires (also its table and topic)."""
        return f"{self.name_prefix}-model-retrain"

    @property
    def retrain_stack_name(self) -> str:
        """The stack holding the retrain function, in the environment whose build it restarts."""
        return f"{self.name_prefix}-retrain"

    @property
    def monitoring_baseline_prefix(self) -> str:
        """Where, in the monitoring bucket, each deployed version's baselines are copied (one folder per deploy)."""
        return f"baselines/{self.endpoint_name}"

    def monitoring_schedule_name(self, check: MonitoringCheck) -> str:
        """A check's schedule: Model Monitor's monitoring schedule, or the platform's EventBridge Scheduler schedule.

        Also the ``MonitoringSchedule`` dimension of its metrics and a folder of its reports.
        """
        return f"{self.name_prefix}-{check}"

    @property
    def monitoring_job_prefix(self) -> str:
        """The platform engine's processing jobs: ``<prefix>-monitor-dq-<yyyymmddhh>`` (and ``-mq-``)."""
        return f"{self.name_prefix}-monitor-"

    def monitoring_alarm_name(self, kind: str) -> str:
        """An alarm on the endpoint's monitoring metrics: drift, data-quality or model-quality."""
        return f"{self.name_prefix}-monitoring-{kind}"

    @property
    def monitoring_role_name(self) -> str:
        """The role monitoring jobs run as (both engines)."""
        return f"{self.name_prefix}-monitoring-job"

    @property
    def monitoring_dashboard_name(self) -> str:
        """The CloudWatch dashboard of the endpoint: traffic, drift, model quality, pipeline runs, retrains."""
        return f"{self.name_prefix}-monitoring"

    @property
    def monitoring_function_prefix(self) -> str:
        """The monitoring functions: ``<prefix>-monitoring-launcher``, ``-results``, ``-baseline``."""
        return f"{self.name_prefix}-monitoring-"

    @property
    def pipeline_code_prefix(self) -> str:
        """Where, in the artifacts bucket, the runner uploads code the SageMaker Pipeline reads (the Spark script)."""
        return f"{self.build_pipeline_name}/code"


def _format_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for item in error.errors():
        parts = [str(part) for part in item["loc"]]
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldError):
            # A rule over several fields is reported at those fields, each with its full path.
            where = ", ".join(".".join([*parts, field]) for field in cause.fields)
        else:
            where = ".".join(parts) or "(top level)"
        # Drop the tag pydantic adds for discriminated unions ("networking.create.cidr").
        where = re.sub(r"\.(create|import)\b", "", where)
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


class _Unreadable(yaml.YAMLError):
    """YAML that parses, but that no configuration should be read from; the message is one line."""


class _DepthExceeded(_Unreadable):
    def __init__(self, line: int) -> None:
        super().__init__(f"not a configuration: nested more than {MAX_YAML_DEPTH} levels deep at line {line}")


class _DuplicateKey(_Unreadable):
    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(
            f"line {line}: duplicate key {key!r} (first at line {first}); YAML would silently keep only the last one"
        )


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and nesting deeper than any config needs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # PyYAML composes recursively: ~1,000 levels crash it with a RecursionError. Stop long before.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _DepthExceeded(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" merges on purpose; its keys may be overridden
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: PyYAML's own error names it below
            if first is not None:
                raise _DuplicateKey(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> object:
    raw = path.read_bytes()
    if b"\x00" in raw:  # UTF-16 or UTF-32 without a byte-order mark: valid UTF-8, but not text YAML reads
        raise ConfigError(
            f"{path}: not UTF-8 text (NUL byte at offset {raw.index(0)}: UTF-16 or UTF-32?); save it as UTF-8"
        )
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is harmless; UTF-16's is not
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except _Unreadable as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        where = str(exc).replace('"<unicode string>"', str(path))  # PyYAML names the text, not the file
        raise ConfigError(f"{path}: not valid YAML: {where}") from None
    except RecursionError:  # belt and braces: construct_object also recurses
        raise ConfigError(f"{path}: not a configuration: nested too deeply") from None


def load_config(path: Path) -> EnvironmentConfig:
    """Read and validate one environment's config file.

    Args:
        path: the YAML file.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing, is not UTF-8, is not YAML (duplicate keys and
            absurd nesting included), or breaks the schema. The message names the file,
            the field (or line) and the problem.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        config = EnvironmentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    if config.name != path.stem:
        raise ConfigError(f"{path}: name: {config.name!r} does not match the file name {path.stem!r}")
    return config


def environment_names(config_dir: Path) -> list[str]:
    """The environments in ``config_dir``: one per ``<name>.yaml``, dev, staging and prod first.

    Raises:
        ConfigError: the folder is missing or holds no environment, or a file name is not a valid name.
    """
    if not config_dir.is_dir():
        raise ConfigError(f"{config_dir}: configuration folder not found")
    names = []
    for path in sorted(config_dir.glob("*.yaml")):
        if not re.fullmatch(ENVIRONMENT_NAME, path.stem):
            raise ConfigError(f"{path}: {path.stem!r} is not a valid environment name ({ENVIRONMENT_NAME_RULE})")
        names.append(path.stem)
    if not names:
        raise ConfigError(f"{config_dir}: no environment: add <name>.yaml files")
    known = [name for name in CONVENTIONAL_ORDER if name in names]
    return known + [name for name in names if name not in CONVENTIONAL_ORDER]


def load_environments(config_dir: Path, selected: str | None = None) -> list[EnvironmentConfig]:
    """Load the selected environment, or every environment in ``config_dir`` when none is selected.

    Args:
        config_dir: folder holding one ``<name>.yaml`` per environment.
        selected: an environment name from ``-c env=NAME``, or None for all.

    Raises:
        ConfigError: an invalid name, a missing file or an invalid file.
    """
    if selected is not None:
        if not isinstance(selected, str) or not re.fullmatch(ENVIRONMENT_NAME, selected):
            raise ConfigError(f"-c env={selected}: not a valid environment name ({ENVIRONMENT_NAME_RULE})")
        path = config_dir / f"{selected}.yaml"
        if not path.is_file():
            available = sorted(p.stem for p in config_dir.glob("*.yaml")) if config_dir.is_dir() else []
            raise ConfigError(
                f"-c env={selected}: no environment {selected!r}: {path} not found "
                f"(environments there: {', '.join(available) or 'none'})"
            )
        names = [selected]
    else:
        names = environment_names(config_dir)
    configs = [load_config(config_dir / f"{name}.yaml") for name in names]
    _check_across_environments(config_dir, configs)
    return configs


def _check_across_environments(config_dir: Path, configs: list[EnvironmentConfig]) -> None:
    """Names that two environments in one account would both create (the second deploy would fail)."""
    shared: dict[tuple[str, str], list[str]] = {}
    for config in configs:
        # IAM roles, SSM parameters, functions and topics are named after the prefix; IAM is account-wide.
        shared.setdefault(("name_prefix", f"{config.name_prefix} in account {config.account}"), []).append(config.name)
        source = config.model_build.source if config.model_build and config.model_build.enabled else None
        if source is not None and source.kind == "codecommit":
            where = f"{source.repository} in account {config.account}, {config.region}"
            shared.setdefault(("model_build.source.repository", where), []).append(config.name)
    clashes = [f"{field} {value} is in {', '.join(names)}" for (field, value), names in shared.items() if names[1:]]
    if clashes:
        raise ConfigError(f"{config_dir}: {'; '.join(clashes)}: each would create it; give each environment its own")
    # An account holds one OIDC provider per URL: two environments in one account cannot both create GitHub's.
    github: dict[str, list[str]] = {}
    for config in configs:
        if config.model_build and config.model_build.enabled and config.model_build.source.kind == "github_actions":
            github.setdefault(config.account, []).append(config.name)
    for account, names in sorted(github.items()):
        if len(names) > 1:
            raise ConfigError(
                f"{config_dir}: model_build.source.kind github_actions in {', '.join(names)}, all in account "
                f"{account}: an account holds one GitHub OIDC provider; use github_actions in one of them, or "
                "one account per environment"
            )


@dataclass(frozen=True)
class Promotion:
    """How approved models move between environments, from the ``deploy`` sections of all config files.

    Attributes:
        source: the environment whose registry deploys to this one's endpoint (itself, another, or None).
        stages: the environments this one's registry deploys to, in order (empty without ``deploy``).
    """

    source: EnvironmentConfig | None = None
    stages: tuple[EnvironmentConfig, ...] = ()


def load_promotions(config_dir: Path) -> dict[str, Promotion]:
    """Link every environment in ``config_dir`` to the registry that deploys to it and the stages it deploys to.

    Both ends need the other's names and accounts at synth (trusts, grants), so every file is read,
    also when one environment is selected.

    Raises:
        ConfigError: a stage that does not exist, has no endpoint, is in another region, or is fed by
            two registries; a monitored endpoint no registry feeds; or any invalid file.
    """
    configs = {config.name: config for config in load_environments(config_dir)}
    sources: dict[str, str] = {}
    stages: dict[str, tuple[EnvironmentConfig, ...]] = {}
    for config in configs.values():
        if config.deploy is None:
            continue
        where = f"{config_dir / (config.name + '.yaml')}: deploy.stages"
        for name in config.deploy.stages:
            stage = configs.get(name)
            if stage is None:
                raise ConfigError(f"{where}: no environment {name!r} (environments: {', '.join(configs)})")
            if stage.endpoint is None:
                raise ConfigError(f"{where}: {name} has no endpoint section to deploy to")
            if stage.region != config.region:
                raise ConfigError(
                    f"{where}: {name} is in {stage.region}, the registry in {config.region}: a model package "
                    "deploys within its region (copy the model to the other region's registry instead)"
                )
            if name in sources:
                raise ConfigError(
                    f"{where}: {name} is already deployed to by {sources[name]}; an endpoint has one registry"
                )
            sources[name] = config.name
        stages[config.name] = tuple(configs[name] for name in config.deploy.stages)
    for config in configs.values():
        if config.monitoring is not None and config.name not in sources:
            raise ConfigError(
                f"{config_dir / (config.name + '.yaml')}: monitoring: no registry deploys to {config.name}, so "
                f"nothing would be monitored and no build retrained: list {config.name} in the deploy.stages of "
                "the environment whose build trains its model"
            )
    return {
        name: Promotion(source=configs[sources[name]] if name in sources else None, stages=stages.get(name, ()))
        for name in configs
    }
