"""Per-environment configuration: one YAML file per environment, validated at synth.

A bad file fails before any construct is built, with one message that names the
file, the field and the problem. A missing file is an error, never a default.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENVIRONMENT_NAMES = ("dev", "staging", "prod")

AccountId = Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit AWS account id")]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")]
AvailabilityZone = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d[a-z]$")]


class ConfigError(Exception):
    """A configuration file is missing or invalid; the message names file, field and problem."""


class _Strict(BaseModel):
    # Unknown keys are typos until proven otherwise: reject them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemovalPolicyName(StrEnum):
    """What happens to stateful resources when the stack is deleted."""

    DESTROY = "destroy"
    RETAIN = "retain"


class CreatedNetwork(_Strict):
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


class ImportedNetwork(_Strict):
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
            raise ValueError(
                "availability_zones, private_subnet_ids and private_route_table_ids must have the same length "
                "(one subnet and route table per zone)"
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
            raise ValueError("auto_delete_objects: true requires removal_policy: destroy")
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
            raise ValueError("kind codeconnections needs connection_arn (the CodeConnections connection to GitHub)")
        if self.kind != "codeconnections" and self.connection_arn:
            raise ValueError(f"connection_arn is only used with kind codeconnections, not {self.kind}")
        if self.kind != "codecommit" and "/" not in self.repository:
            raise ValueError(f"kind {self.kind} needs repository as owner/name, got {self.repository!r}")
        if self.kind == "codecommit" and "/" in self.repository:
            raise ValueError("kind codecommit needs a repository name without an owner")
        return self


class PipelineDefaults(_Strict):
    """Default values of the SageMaker Pipeline's parameters; each can be overridden per execution."""

    target: str = "rings"
    problem_type: Literal["regression", "binary", "multiclass"] = "regression"
    input_data_key: str = Field(default="abalone/abalone.csv", description="key in the data bucket")
    processing_instance_type: str = Field(default="ml.m5.xlarge", pattern=INSTANCE_TYPE)
    processing_instance_count: int = Field(default=1, ge=1, le=100)
    training_instance_type: str = Field(default="ml.m5.xlarge", pattern=INSTANCE_TYPE)
    training_instance_count: int = Field(default=1, ge=1, le=100)
    # Regression: the test RMSE must be at most this. Classification: AUC / weighted F1 at least this.
    metric_threshold: float = Field(default=3.0, gt=0)
    time_budget_seconds: int = Field(default=600, ge=10)
    # Large data: preprocess with Spark (SageMaker's PySparkProcessor) on ProcessingInstanceCount instances.
    spark_preprocessing: bool = False


class ModelBuild(_Strict):
    """The model-build CI/CD: source, CodePipeline (or GitHub Actions), and the SageMaker Pipeline."""

    enabled: bool = True
    source: ModelBuildSource
    pipeline: PipelineDefaults = PipelineDefaults()


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


class EnvironmentConfig(_Strict):
    """Everything that differs between dev, staging and prod."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,15}$")
    account: AccountId
    region: Region
    tooling_account: AccountId | None = Field(
        default=None, description="Account that holds CI/CD and the model registry, when multi-account"
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
            raise ValueError(f"log_retention_days must be one of CloudWatch's values {LOG_RETENTION_DAYS}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> EnvironmentConfig:
        if self.tooling_account == self.account:
            raise ValueError("tooling_account must differ from account (omit it for a single-account setup)")
        if self.networking.flow_log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"networking.flow_log_retention_days must be one of CloudWatch's values {LOG_RETENTION_DAYS}"
            )
        for zone in self.networking.availability_zones:
            if not zone.startswith(self.region):
                raise ValueError(f"availability zone {zone!r} is not in region {self.region!r}")
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
    def pipeline_code_prefix(self) -> str:
        """Where, in the artifacts bucket, the runner uploads code the SageMaker Pipeline reads (the Spark script)."""
        return f"{self.build_pipeline_name}/code"


def _format_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        # Drop the tag pydantic adds for discriminated unions ("networking.create.cidr").
        where = re.sub(r"\.(create|import)\b", "", where)
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def load_config(path: Path) -> EnvironmentConfig:
    """Read and validate one environment's config file.

    Args:
        path: the YAML file.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing, is not YAML, or breaks the schema. The
            message names the file, the field and the problem.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        config = EnvironmentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    if config.name != path.stem:
        raise ConfigError(f"{path}: name: {config.name!r} does not match the file name {path.stem!r}")
    return config


def load_environments(config_dir: Path, selected: str | None = None) -> list[EnvironmentConfig]:
    """Load the selected environment, or all three when none is selected.

    Args:
        config_dir: folder holding ``dev.yaml``, ``staging.yaml`` and ``prod.yaml``.
        selected: an environment name from ``-c env=NAME``, or None for all.

    Raises:
        ConfigError: an unknown name, a missing file or an invalid file.
    """
    if selected is not None and selected not in ENVIRONMENT_NAMES:
        raise ConfigError(f"-c env={selected}: unknown environment; expected one of {', '.join(ENVIRONMENT_NAMES)}")
    names = [selected] if selected else list(ENVIRONMENT_NAMES)
    configs = [load_config(config_dir / f"{name}.yaml") for name in names]
    _check_across_environments(config_dir, configs)
    return configs


def _check_across_environments(config_dir: Path, configs: list[EnvironmentConfig]) -> None:
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
