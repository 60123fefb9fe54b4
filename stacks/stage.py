"""One deployable environment: a Stage holding the component stacks, behind the compliance gate."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from stacks.compliance.gate import attach_compliance_gate
from stacks.config import EnvironmentConfig
from stacks.foundation.stack import FoundationStack


class EnvironmentStage(cdk.Stage):
    """dev, staging or prod, built from its config file."""

    def __init__(self, scope: Construct, config: EnvironmentConfig) -> None:
        super().__init__(scope, config.name, env=cdk.Environment(account=config.account, region=config.region))
        self.config = config
        self.foundation = FoundationStack(self, "Foundation", config=config)
        self.acknowledgments_used = attach_compliance_gate(self)
