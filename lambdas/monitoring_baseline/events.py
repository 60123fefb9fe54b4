"""The custom resource's events (Powertools' CloudFormation models) and its properties.

CloudFormation sends Create, Update and Delete, told apart by ``RequestType``; the response URL
must be https (CloudFormation's are pre-signed https URLs; Powertools' ``HttpUrl`` would take
http too). The properties are the deploy's parameters (``stacks/endpoint/package.py``) and the
names ``stacks/monitoring`` gives; CloudFormation sends every value as a string.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"


def https_url(value: str) -> str:
    """CloudFormation answers only over https; anything else (``file://``, ``http://``) is refused."""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("ResponseURL must be an https URL")
    return value


class _HttpsResponseUrl(BaseModel):
    response_url: Annotated[str, AfterValidator(https_url)] = Field(alias="ResponseURL")


class CreateEvent(_HttpsResponseUrl, CloudFormationCustomResourceCreateModel):  # type: ignore[misc]
    """A Create event."""


class UpdateEvent(_HttpsResponseUrl, CloudFormationCustomResourceUpdateModel):  # type: ignore[misc]
    """An Update event."""


class DeleteEvent(_HttpsResponseUrl, CloudFormationCustomResourceDeleteModel):  # type: ignore[misc]
    """A Delete event."""


Event = CreateEvent | UpdateEvent | DeleteEvent
_Discriminated = Annotated[Event, Field(discriminator="request_type")]


class BaselineProperties(BaseModel):
    """What to copy from where, and the model-quality tolerance."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    model_package_arn: str = Field(
        alias="ModelPackageArn", pattern=r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[^/]+/\d+$"
    )
    statistics_uri: str = Field(alias="StatisticsUri", pattern=S3_URI)
    constraints_uri: str = Field(alias="ConstraintsUri", pattern=S3_URI)
    evaluation_uri: str = Field(alias="EvaluationUri", pattern=S3_URI)
    bucket: str = Field(alias="Bucket", min_length=3, max_length=63)
    prefix: str = Field(alias="Prefix", min_length=1)
    kms_key_arn: str = Field(alias="KmsKeyArn", pattern=r"^arn:aws[a-z-]*:kms:")
    problem_type: Literal["regression", "binary", "multiclass"] = Field(alias="ProblemType")
    max_quality_degradation: float = Field(alias="MaxQualityDegradation", gt=0, lt=1)
    # Replaces the registered constraints' comparison thresholds (numeric and categorical) when given.
    drift_threshold: float | None = Field(default=None, alias="DriftThreshold", gt=0, lt=1)


def parse_event(event: dict[str, Any]) -> Event:
    """Parse the envelope (raises pydantic's ValidationError, naming the fields)."""
    parsed: Event = parse(event=event, model=_Discriminated)  # type: ignore[call-overload]
    return parsed


def parse_properties(event: Event) -> BaselineProperties:
    """Validate the resource's properties (raises pydantic's ValidationError, naming the fields)."""
    return BaselineProperties.model_validate(event.resource_properties or {})
