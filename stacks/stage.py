"""One deployable environment: a Stage holding the component stacks, behind the compliance gate."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from stacks.compliance.gate import attach_compliance_gate
from stacks.config import EnvironmentConfig, Persona, Promotion
from stacks.deploy.stack import DeployStack
from stacks.endpoint.stack import EndpointStack
from stacks.foundation.stack import FoundationStack
from stacks.model_build.stack import ModelBuildStack
from stacks.retrain.stack import RetrainStack
from stacks.studio.stack import StudioStack


class EnvironmentStage(cdk.Stage):
    """dev, staging or prod, built from its config file."""

    def __init__(self, scope: Construct, config: EnvironmentConfig, promotion: Promotion | None = None) -> None:
        super().__init__(scope, config.name, env=cdk.Environment(account=config.account, region=config.region))
        self.config = config
        # Which registry deploys to this environment's endpoint, and where this registry deploys.
        self.promotion = promotion or Promotion()
        # Stages in other accounts read this registry's versions: grants on its bucket, key, images and group.
        consumers = [stage for stage in self.promotion.stages if stage.account != config.account]
        self.foundation = FoundationStack(self, "Foundation", config=config, consumers=consumers)
        self.studio = (
            StudioStack(self, "Studio", config=config, foundation=self.foundation) if config.studio.enabled else None
        )
        build = config.model_build
        self.model_build = (
            ModelBuildStack(self, "ModelBuild", config=config, foundation=self.foundation, consumers=consumers)
            if build is not None and build.enabled
            else None
        )
        self.endpoint = (
            EndpointStack(self, "Endpoint", config=config, foundation=self.foundation, promotion=self.promotion)
            if config.endpoint is not None
            else None
        )
        # The registry's deploy: its approved versions go to promotion.stages (this environment's deploy section).
        self.deploy = (
            DeployStack(
                self,
                "Deploy",
                config=config,
                foundation=self.foundation,
                promotion=self.promotion,
                approvers=[self.studio.personas.roles[Persona.ML_ENGINEER]] if self.studio is not None else [],
            )
            if config.deploy is not None and self.promotion.stages
            else None
        )
        # The retrain function lives with the build it restarts: here, if this registry feeds a monitored endpoint.
        monitored = [stage for stage in self.promotion.stages if stage.monitoring is not None]
        self.retrain = (
            RetrainStack(self, "Retrain", config=config, foundation=self.foundation, stages=monitored)
            if monitored
            else None
        )
        self.placeholders = self._placeholders()
        self.acknowledgments_used = attach_compliance_gate(self, self.placeholders)

    def _placeholders(self) -> dict[str, str]:
        """Values of the environment-specific parts of acknowledged findings."""
        config = self.config
        values = {
            "partition": config.partition,
            "region": config.region,
            "account": config.account,
            "prefix": config.name_prefix,
            "models": config.model_package_group_name,
            "domain": "",
            "deploy_tasks": "",
            "ci_artifacts": config.ci_artifact_prefix,
            "endpoint": config.endpoint_name,
        }
        # The registry environment an endpoint serves from: its names appear in the endpoint's roles.
        source = self.promotion.source or config
        values |= {
            "source_prefix": source.name_prefix,
            "source_partition": source.partition,
            "source_account": source.account,
            "source_region": source.region,
            "source_models": source.model_package_group_name,
        }
        if self.deploy is not None:
            # CDK lets the state machine invoke the tasks function's versions too: "<arn>:*", by token.
            function = self.deploy.tasks.function.node.default_child
            values["deploy_tasks"] = f"<{self.deploy.resolve(function.logical_id)}.Arn>"  # type: ignore[union-attr]
        if self.studio is not None:
            domain = self.studio.studio.domain
            # The packs print a token as <LogicalId.Attribute>.
            values["domain"] = f"<{self.studio.resolve(domain.logical_id)}.DomainId>"
        return values
