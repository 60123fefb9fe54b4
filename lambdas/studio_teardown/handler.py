"""Lambda entry point of the Studio teardown custom resource (thin: parse, delegate, respond).

Create and Update only record the domain. Delete empties it (and deletes it with its home
EFS when the config says so), then answers CloudFormation. Repeated Delete events are
harmless: the teardown looks at what is left each time.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from studio_teardown import cfn_response
from studio_teardown.teardown import Teardown, TeardownTimeout

logger = Logger(service="studio-teardown")
SAFETY_MARGIN_SECONDS = 30.0


class TeardownProperties(BaseModel):
    """The custom resource's properties (CloudFormation sends every value as a string)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    domain_id: str = Field(alias="DomainId", pattern=r"^d-(-*[a-z0-9]){1,61}$")  # SageMaker's DomainId pattern
    teardown_on_delete: bool = Field(alias="TeardownOnDelete")
    home_efs_retention: Literal["Retain", "Delete"] = Field(alias="HomeEfsRetention")


@cache
def sagemaker_client() -> Any:
    # Built on first use, not at import: tests and cold starts need no region to import.
    return boto3.client("sagemaker", config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def handle(
    event: dict[str, Any],
    remaining_seconds: float,
    client: Any,
    respond: Any = cfn_response.send,
    sleep: Any = time.sleep,
) -> str:
    """Process one custom-resource event and answer CloudFormation. Returns the status sent."""
    request_type = event.get("RequestType")
    models: dict[str, type[BaseModel]] = {
        "Create": CloudFormationCustomResourceCreateModel,
        "Update": CloudFormationCustomResourceUpdateModel,
        "Delete": CloudFormationCustomResourceDeleteModel,
    }
    model = models.get(str(request_type))
    physical_id = event.get("PhysicalResourceId") or f"studio-teardown-{event.get('LogicalResourceId', 'unknown')}"
    try:
        if model is None:
            raise ValueError(f"unknown RequestType {request_type!r}")
        parse(event=event, model=model)
        props = TeardownProperties.model_validate(event.get("ResourceProperties", {}))
    except (ValidationError, ValueError) as exc:
        logger.error("bad custom resource event", extra={"error": str(exc)})
        respond(event, status="FAILED", reason=f"bad event: {exc}", physical_id=physical_id)
        return "FAILED"
    physical_id = event.get("PhysicalResourceId") or f"studio-teardown-{props.domain_id}"
    if request_type != "Delete" or not props.teardown_on_delete:
        respond(
            event, status="SUCCESS", reason="nothing to do", physical_id=physical_id, data={"DomainId": props.domain_id}
        )
        return "SUCCESS"
    teardown = Teardown(
        client=client,
        domain_id=props.domain_id,
        deadline=time.monotonic() + remaining_seconds - SAFETY_MARGIN_SECONDS,
        sleep=sleep,
        log=lambda message: logger.info(message),
    )
    try:
        actions = teardown.run(delete_domain=props.home_efs_retention == "Delete")
    except (TeardownTimeout, ClientError, BotoCoreError) as exc:
        logger.exception("teardown failed")
        respond(event, status="FAILED", reason=f"teardown of {props.domain_id} failed: {exc}", physical_id=physical_id)
        return "FAILED"
    logger.info("teardown done", extra={"actions": actions})
    respond(event, status="SUCCESS", reason=f"{len(actions)} deletions", physical_id=physical_id)
    return "SUCCESS"


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    status = handle(event, context.get_remaining_time_in_millis() / 1000, sagemaker_client())
    return {"status": status}
