"""Pipeline parameter values, checked before an upsert or a start, with a message naming the problem."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stacks.config import INSTANCE_TYPE

IMAGE_URI = r"^[^\s/@]+/[^\s@:]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"


class ParameterError(ValueError):
    """A pipeline parameter value is wrong; the message names the parameter and the value."""


class PipelineParameters(BaseModel):
    """The SageMaker Pipeline's parameters, by their pipeline names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # The bucket may still be a discovery reference: overrides are checked before anything is read.
    InputDataUri: str = Field(pattern=r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9]|\{\{ssm:/[A-Za-z0-9_./-]+\}\})/.+$")
    ProcessingInstanceType: str = Field(pattern=INSTANCE_TYPE)
    ProcessingInstanceCount: int = Field(ge=1, le=100)
    TrainingInstanceType: str = Field(pattern=INSTANCE_TYPE)
    TrainingInstanceCount: int = Field(ge=1, le=100)
    MetricThreshold: float
    SourceCommit: str = Field(default="unknown", pattern=r"^([0-9a-f]{7,40}|unknown)$")
    # registry/repository:tag (the runner pins it) or registry/repository@sha256:<digest>.
    TrainingImage: str = Field(pattern=IMAGE_URI)
    InferenceImage: str = Field(pattern=IMAGE_URI)
    # Anything but "none" makes every step run again instead of coming from the cache (pipelines.reproduce).
    RebuildId: str = Field(default="none", pattern=r"^[A-Za-z0-9-]{1,64}$")

    @field_validator("ProcessingInstanceCount", "TrainingInstanceCount", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{value!r} is not a whole number")
        return value

    @field_validator("MetricThreshold", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number

    def as_execution_parameters(self) -> list[dict[str, str]]:
        """StartPipelineExecution's PipelineParameters: every value as a string."""
        return [{"Name": name, "Value": str(value)} for name, value in self.model_dump().items()]


def check_parameters(
    defaults: dict[str, Any], overrides: list[str] | None = None, *, resolved: bool = True
) -> PipelineParameters:
    """Merge ``Name=Value`` overrides into the defaults and check every value.

    Args:
        resolved: every discovery reference must have been resolved (what a start needs);
            False checks the overrides before any parameter is read.

    Raises:
        ParameterError: an unknown name, a malformed override, a bad value, or an unresolved reference.
    """
    values = dict(defaults)
    for item in overrides or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ParameterError(f"parameter override {item!r}: expected Name=Value")
        if name not in PipelineParameters.model_fields:
            raise ParameterError(
                f"parameter override {item!r}: unknown parameter {name!r}; "
                f"known: {', '.join(PipelineParameters.model_fields)}"
            )
        values[name] = value
    if resolved and (unresolved := [f"{k}={v!r}" for k, v in values.items() if "{{ssm" in str(v)]):
        raise ParameterError(f"unresolved discovery reference in {', '.join(unresolved)}")
    try:
        return PipelineParameters.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}={values.get(str(e['loc'][0]))!r}: {e['msg']}" for e in exc.errors()
        )
        raise ParameterError(f"invalid pipeline parameters: {problems}") from None
