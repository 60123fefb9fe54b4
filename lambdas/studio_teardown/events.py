"""The custom resource's event: Powertools' CloudFormation models, with an https-only response URL.

CloudFormation sends one of three shapes (Create, Update, Delete), told apart by
``RequestType``; Powertools' parser models them. Two things are ours: the response URL
must be https (Powertools' ``HttpUrl`` also takes http, and the URL is kept byte for byte,
since normalizing a pre-signed URL would break its signature), and the resource's
properties, checked separately so that a Delete whose properties are unreadable can still
succeed (nothing was created from them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from studio_teardown.cfn_response import ResponseTarget, https_url

HttpsUrl = Annotated[str, AfterValidator(https_url)]


class _HttpsResponseUrl(BaseModel):
    response_url: HttpsUrl = Field(alias="ResponseURL")


class CreateEvent(_HttpsResponseUrl, CloudFormationCustomResourceCreateModel):  # type: ignore[misc]
    """A Create event (no physical id yet)."""


class UpdateEvent(_HttpsResponseUrl, CloudFormationCustomResourceUpdateModel):  # type: ignore[misc]
    """An Update event."""


class DeleteEvent(_HttpsResponseUrl, CloudFormationCustomResourceDeleteModel):  # type: ignore[misc]
    """A Delete event."""


CustomResourceEvent = Annotated[CreateEvent | UpdateEvent | DeleteEvent, Field(discriminator="request_type")]


class TeardownProperties(BaseModel):
    """The custom resource's properties (CloudFormation sends every value as a string)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    domain_id: str = Field(alias="DomainId", pattern=r"^d-(-*[a-z0-9]){1,61}$")  # SageMaker's DomainId pattern
    teardown_on_delete: bool = Field(alias="TeardownOnDelete")
    home_efs_retention: Literal["Retain", "Delete"] = Field(alias="HomeEfsRetention")


def parse_event(event: dict[str, Any]) -> CreateEvent | UpdateEvent | DeleteEvent:
    """Parse the envelope with Powertools' parser.

    Raises:
        ValidationError: a field is missing or has the wrong type, or the URL is not https.
    """
    parsed: CreateEvent | UpdateEvent | DeleteEvent = parse(event=event, model=CustomResourceEvent)  # type: ignore[call-overload]
    return parsed


def parse_properties(event: CreateEvent | UpdateEvent | DeleteEvent) -> TeardownProperties:
    """Validate the resource's properties.

    Raises:
        ValidationError: a property is missing or invalid.
    """
    return TeardownProperties.model_validate(event.resource_properties or {})


def target_of(event: CreateEvent | UpdateEvent | DeleteEvent) -> ResponseTarget:
    """Where to answer a parsed event."""
    return ResponseTarget(event.response_url, event.stack_id, event.request_id, event.logical_resource_id)


def salvage_target(raw: object) -> tuple[ResponseTarget | None, str]:
    """Where to answer an event that did not parse, if anywhere.

    An event with a usable https ``ResponseURL`` is answered even when its identifiers are
    missing or mistyped (echoed as empty strings: the answer still says what was wrong).

    Returns:
        The target, or None and why no answer can be sent.
    """
    if not isinstance(raw, dict):
        return None, f"the event is a {type(raw).__name__}, not a JSON object"
    try:
        url = https_url(raw.get("ResponseURL"))
    except ValueError as exc:
        return None, str(exc)

    def text(key: str) -> str:
        value = raw.get(key)
        return value if isinstance(value, str) else ""

    return ResponseTarget(url, text("StackId"), text("RequestId"), text("LogicalResourceId")), ""


def describe(error: ValidationError) -> str:
    """One line per problem, naming the field (never echoing the input, which may be anything)."""
    return "; ".join(f"{'.'.join(str(p) for p in item['loc']) or '(event)'}: {item['msg']}" for item in error.errors())


__all__ = [
    "CreateEvent",
    "CustomResourceEvent",
    "DeleteEvent",
    "TeardownProperties",
    "UpdateEvent",
    "ValidationError",
    "describe",
    "parse_event",
    "parse_properties",
    "salvage_target",
    "target_of",
]
