"""SSM parameters through which later stacks and the ML code find the foundation."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct


class DiscoveryParameters(Construct):
    """Publishes one String parameter per entry, under ``<prefix>/<key>``.

    Names are never guessed elsewhere: consumers read these parameters (or take the
    constructs directly when they are in the same CDK app).
    """

    def __init__(self, scope: Construct, id_: str, *, prefix: str, values: dict[str, str]) -> None:
        super().__init__(scope, id_)
        self.parameter_names: dict[str, str] = {}
        for key in sorted(values):
            name = f"{prefix}/{key}"
            ssm.StringParameter(
                self,
                "".join(part.capitalize() for part in key.replace("-", "/").split("/")),
                parameter_name=name,
                string_value=values[key],
                description=f"AWS-MLOps discovery: {key}",
            )
            self.parameter_names[key] = name
