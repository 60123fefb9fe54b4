"""ModelBuildStack: the model registry, the pipeline's role and network, and the CI that runs it."""

from __future__ import annotations

from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.foundation.discovery import DiscoveryParameters
from stacks.foundation.stack import FoundationStack
from stacks.model_build.ci import BuildPipeline
from stacks.model_build.execution_role import PipelineExecution
from stacks.model_build.github_actions import GitHubActionsAccess
from stacks.model_build.registry import ModelRegistry
from stacks.platform_stack import PlatformStack


class ModelBuildStack(PlatformStack):
    """Model build of one environment."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        foundation: FoundationStack,
        consumers: list[EnvironmentConfig] | None = None,
    ) -> None:
        super().__init__(scope, id_, config=config, description=f"AWS-MLOps {config.name}: model build")
        assert config.model_build is not None
        keys, buckets, repos = foundation.keys, foundation.buckets, foundation.repositories
        repositories = [repos.training, repos.inference]
        self.registry = ModelRegistry(self, "Registry", config=config, consumers=consumers or [])
        self.execution = PipelineExecution(
            self,
            "Execution",
            config=config,
            vpc=foundation.network.vpc,
            data_key=keys.data_key,
            data_bucket_arn=buckets.bucket_arn("data"),
            artifacts_bucket_arn=buckets.bucket_arn("artifacts"),
            repositories=repositories,
        )
        # What the pipeline runner reads at run time (pipelines/settings.py names the same keys).
        self.discovery = DiscoveryParameters(
            self,
            "Discovery",
            prefix=config.discovery_parameter("model-build"),
            values={
                "job-security-group-id": self.execution.security_group.security_group_id,
                "pipeline-role-arn": self.execution.role.role_arn,
            },
        )
        self.ci: BuildPipeline | None = None
        self.github: GitHubActionsAccess | None = None
        if config.model_build.source.kind == "github_actions":
            self.github = GitHubActionsAccess(
                self,
                "GitHubActions",
                config=config,
                pipeline_role=self.execution.role,
                repositories=repositories,
                artifacts_bucket_arn=buckets.bucket_arn("artifacts"),
                data_key=keys.data_key,
            )
        else:
            self.ci = BuildPipeline(
                self,
                "Ci",
                config=config,
                artifacts_bucket_arn=buckets.bucket_arn("artifacts"),
                data_key=keys.data_key,
                logs_key=keys.logs_key,
                repositories=repositories,
                pipeline_role=self.execution.role,
            )
