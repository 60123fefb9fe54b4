"""GitHub Actions as the model build's CI: an OIDC provider and a role only one repository and branch can assume."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import RUNNER_SESSION_HOURS, EnvironmentConfig
from stacks.model_build.runner_permissions import push_image_statements, upsert_and_run_statements

GITHUB_OIDC = "token.actions.githubusercontent.com"


class GitHubActionsAccess(Construct):
    """The role examples/github-actions/model-build.yml assumes with the workflow's OIDC token.

    Attributes:
        role: trusted only for pushes to the configured branch of the configured repository.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        pipeline_role: iam.IRole,
        repositories: list[ecr.IRepository],
        artifacts_bucket_arn: str,
        data_key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        assert config.model_build is not None
        source = config.model_build.source
        provider = iam.OidcProviderNative(
            self, "Provider", url=f"https://{GITHUB_OIDC}", client_ids=["sts.amazonaws.com"]
        )
        self.role = iam.Role(
            self,
            "Role",
            role_name=config.github_role_name,
            description=f"GitHub Actions of {source.repository}@{source.branch}: model build for {config.name}",
            # Long enough to follow the pipeline's execution to its end (see RUNNER_SESSION_HOURS).
            max_session_duration=cdk.Duration.hours(RUNNER_SESSION_HOURS),
            assumed_by=iam.WebIdentityPrincipal(
                provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                        f"{GITHUB_OIDC}:sub": f"repo:{source.repository}:ref:refs/heads/{source.branch}",
                    }
                },
            ),
        )
        iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            description=f"{config.name_prefix}: what the GitHub model-build workflow may do",
            statements=[
                *push_image_statements(repositories),
                *upsert_and_run_statements(self, config, pipeline_role, artifacts_bucket_arn, data_key),
            ],
        )
