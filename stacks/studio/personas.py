"""Execution roles for the two Studio personas, with deliberately different rights.

Both personas read the data, experiment (training and processing jobs inside the VPC),
use their Studio apps and spaces, and browse pipelines and the model registry. Only the ML
engineer approves model packages, starts this environment's pipelines and pushes images.
Everything is scoped to this environment's buckets, key, repositories, domain, pipelines
and model package group. List and Search calls take no resource ARN in IAM, so they alone
use ``Resource: "*"`` (see tests/infra/test_compliance_gate.py for the allow-list).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EnvironmentConfig, Persona
from stacks.principals import PEOPLE_PREFIXES
from stacks.sagemaker_access import (
    STUDIO_LOG_GROUP,
    data_statements,
    job_statements,
    pass_own_role_statement,
    pull_images_statement,
    sagemaker_arn,
    sagemaker_logs_statements,
    service_principal,
)

# Read-only calls whose IAM actions support no resource-level permissions.
LIST_ACTIONS = [
    "sagemaker:ListApps",
    "sagemaker:ListSpaces",
    "sagemaker:ListUserProfiles",
    "sagemaker:ListDomains",
    "sagemaker:ListTrainingJobs",
    "sagemaker:ListProcessingJobs",
    "sagemaker:ListPipelines",
    "sagemaker:ListModelPackageGroups",
    "sagemaker:ListModels",
    "sagemaker:ListEndpoints",
    "sagemaker:Search",
    "ecr:GetAuthorizationToken",
]


def _label(persona: Persona) -> str:
    return "".join(part.capitalize() for part in persona.value.split("_"))


class PersonaRoles(Construct):
    """One role per persona, assumed by SageMaker for the user's apps and jobs.

    Built in two steps because the domain needs the roles and the policies need the
    domain's id: construct the roles, create the domain, then ``attach_policies``.

    Attributes:
        roles: persona -> role.
    """

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, id_)
        self.config = config
        self.roles: dict[Persona, iam.Role] = {
            persona: iam.Role(
                self,
                f"{_label(persona)}Role",
                assumed_by=service_principal(self, "sagemaker.amazonaws.com"),
                description=f"{config.name_prefix} Studio persona: {persona.value}",
                max_session_duration=cdk.Duration.hours(4),
            )
            for persona in Persona
        }

    def attach_policies(
        self,
        *,
        domain_id: str,
        subnet_ids: list[str],
        security_group_id: str,
        data_key: kms.IKey,
        data_bucket_arn: str,
        artifacts_bucket_arn: str,
        training_repository: ecr.IRepository,
        inference_repository: ecr.IRepository,
    ) -> None:
        """Give each persona its rights, scoped to this environment and this domain."""
        config = self.config

        def arn(resource: str, name: str) -> str:
            return sagemaker_arn(self, resource, name)

        for persona, role in self.roles.items():
            statements = [
                iam.PolicyStatement(sid="ListAndSearch", actions=LIST_ACTIONS, resources=["*"]),
                *_own_apps_and_spaces(self, domain_id),
                # Experiments are named <prefix>-...: a persona of one environment reaches no other's jobs.
                *job_statements(
                    self,
                    sid="ExperimentJobs",
                    job_name_prefix=f"{config.name_prefix}-",
                    subnet_ids=subnet_ids,
                    security_group_ids=[security_group_id],
                    data_key=data_key,
                ),
                iam.PolicyStatement(
                    sid="ReadPipelinesAndRegistry",
                    actions=[
                        "sagemaker:DescribePipeline",
                        "sagemaker:ListPipelineExecutions",
                        "sagemaker:DescribePipelineExecution",
                        "sagemaker:ListPipelineExecutionSteps",
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:ListModelPackages",
                        "sagemaker:DescribeModelPackage",
                    ],
                    resources=[
                        arn("pipeline", f"{config.pipeline_name_prefix}*"),
                        arn("model-package-group", config.model_package_group_name),
                        arn("model-package", f"{config.model_package_group_name}/*"),
                    ],
                ),
                pass_own_role_statement(role),
                *data_statements(
                    data_bucket_arn=data_bucket_arn,
                    artifacts_bucket_arn=artifacts_bucket_arn,
                    data_key=data_key,
                    write_prefixes=PEOPLE_PREFIXES,
                ),
                pull_images_statement([training_repository, inference_repository]),
                *sagemaker_logs_statements(
                    self,
                    job_name_prefix=f"{config.name_prefix}-",
                    extra_streams=[(STUDIO_LOG_GROUP, f"{domain_id}/")],
                ),
            ]
            if persona is Persona.ML_ENGINEER:
                statements += [
                    # The approver can change nothing the approval covers: the pipeline's outputs and the
                    # images are CI's alone (bucket and repository policies), and no persona pushes.
                    iam.PolicyStatement(
                        sid="ApproveModelPackages",
                        actions=["sagemaker:UpdateModelPackage"],
                        resources=[arn("model-package", f"{config.model_package_group_name}/*")],
                        conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": ["Approved", "Rejected"]}},
                    ),
                    iam.PolicyStatement(
                        sid="RunThisEnvironmentsPipelines",
                        actions=["sagemaker:StartPipelineExecution", "sagemaker:StopPipelineExecution"],
                        resources=[arn("pipeline", f"{config.pipeline_name_prefix}*")],
                    ),
                ]
            iam.ManagedPolicy(
                self,
                f"{_label(persona)}Policy",
                description=f"{config.name_prefix} Studio persona {persona.value}",
                statements=statements,
                roles=[role],
            )


def _own_apps_and_spaces(scope: Construct, domain_id: str) -> list[iam.PolicyStatement]:
    """A user's own spaces and their apps in this domain, and the apps of the domain's shared spaces.

    ``sagemaker:OwnerUserProfileArn`` is the space's owner; ``${sagemaker:UserProfileName}`` is the
    profile the Studio session belongs to (the domain sets ``ExecutionRoleIdentityConfig``), so a user
    of a persona cannot create, change or delete another user's space or its apps, although both run
    as the same role.
    """

    def arn(resource: str, name: str) -> str:
        return sagemaker_arn(scope, resource, name)

    own_profile = arn("user-profile", f"{domain_id}/${{sagemaker:UserProfileName}}")
    return [
        iam.PolicyStatement(
            sid="DescribeTheDomain",
            actions=[
                "sagemaker:DescribeDomain",
                "sagemaker:DescribeUserProfile",
                "sagemaker:DescribeSpace",
                "sagemaker:DescribeApp",
            ],
            resources=[
                arn("domain", domain_id),
                arn("user-profile", f"{domain_id}/*"),
                arn("space", f"{domain_id}/*"),
                arn("app", f"{domain_id}/*"),
            ],
        ),
        iam.PolicyStatement(
            sid="OwnSpacesAndTheirApps",
            actions=[
                "sagemaker:CreateSpace",
                "sagemaker:UpdateSpace",
                "sagemaker:DeleteSpace",
                "sagemaker:CreateApp",
                "sagemaker:DeleteApp",
                "sagemaker:AddTags",
            ],
            resources=[arn("space", f"{domain_id}/*"), arn("app", f"{domain_id}/*")],
            conditions={"ArnLike": {"sagemaker:OwnerUserProfileArn": own_profile}},
        ),
        iam.PolicyStatement(
            # Apps of the domain's shared spaces (no owner): every member of the domain may run them.
            sid="SharedSpaceApps",
            actions=["sagemaker:CreateApp", "sagemaker:DeleteApp"],
            resources=[arn("app", f"{domain_id}/*")],
            conditions={
                "Null": {"sagemaker:OwnerUserProfileArn": "true"},
                "StringEquals": {"sagemaker:SpaceSharingType": "Shared"},
            },
        ),
        iam.PolicyStatement(
            sid="OwnProfileApps",
            actions=["sagemaker:CreateApp", "sagemaker:DeleteApp", "sagemaker:AddTags"],
            resources=[arn("app", f"{domain_id}/${{sagemaker:UserProfileName}}/*")],
        ),
    ]
