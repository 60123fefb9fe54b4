"""ECR repositories for the training/processing image and the inference image."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EnvironmentConfig, RemovalPolicyName
from stacks.platform_stack import deny_all_but, removal_policy
from stacks.principals import consumer_principals, image_pusher_arns

PUSH_ACTIONS = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]


class ImageRepositories(Construct):
    """Private repositories: scan on push, immutable tags, KMS, untagged images expire.

    Attributes:
        training: image for SageMaker Processing and Training jobs.
        inference: image for SageMaker endpoints.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        key: kms.IKey,
        consumers: list[EnvironmentConfig],
    ) -> None:
        super().__init__(scope, id_)
        destroy = config.retention.removal_policy is RemovalPolicyName.DESTROY

        def repository(name: str) -> ecr.Repository:
            repo = ecr.Repository(
                self,
                name.capitalize(),
                repository_name=config.repository_name(name),
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                encryption=ecr.RepositoryEncryption.KMS,
                encryption_key=key,
                removal_policy=removal_policy(config),
                empty_on_delete=destroy and config.retention.auto_delete_objects,
                lifecycle_rules=[
                    ecr.LifecycleRule(
                        description="Expire untagged images",
                        tag_status=ecr.TagStatus.UNTAGGED,
                        max_image_age=cdk.Duration.days(config.retention.untagged_image_expiration_days),
                    )
                ],
            )
            # CI skips a build when the content-hash tag exists, so whoever could push a tag first
            # would choose what CI ships: only CI pushes (tags are immutable, so nobody overwrites).
            repo.add_to_resource_policy(
                deny_all_but(config, sid="OnlyCiPushes", actions=PUSH_ACTIONS, allowed_arns=image_pusher_arns(config))
            )
            if config.tooling_account:
                # The tooling account reads (it runs no CI: see the README's Deploying); only CI pushes.
                repo.grant_pull(iam.AccountPrincipal(config.tooling_account))
            for principal in consumer_principals(consumers):
                # Endpoints (inference) and their monitors (training image) in other accounts pull this registry's.
                repo.grant_pull(principal)
            return repo

        self.training: ecr.IRepository = repository("training")
        self.inference: ecr.IRepository = repository("inference")
