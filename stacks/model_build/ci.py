"""CodePipeline V2 for the model build: source -> unit tests -> images -> upsert and run the SageMaker Pipeline."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.model_build.runner_permissions import push_image_statements, upsert_and_run_statements
from stacks.platform_stack import encrypted_log_group
from stacks.principals import ci_role_name
from stacks.sagemaker_access import service_principal

PYTHON = "3.11"

IMAGES_COMMANDS = [
    "TAG=$(python3 -m pipelines.image_tag)",
    "aws ecr get-login-password | docker login --username AWS --password-stdin $REGISTRY",
    # Tags are immutable and derived from the sources: an image is built only when its sources changed.
    "for image in training inference; do repo=$NAME_PREFIX/$image; "
    "if aws ecr describe-images --repository-name $repo --image-ids imageTag=$TAG > /dev/null 2>&1; "
    'then echo "$repo:$TAG exists"; '
    "else docker build -f ml_code/containers/$image/Dockerfile -t $REGISTRY/$repo:$TAG . "
    "&& docker push $REGISTRY/$repo:$TAG; fi; done",
]


def _install(*requirements: str) -> str:
    return "pip install --quiet --disable-pip-version-check " + " ".join(f"-r {r}" for r in requirements)


# The commands of the two Python stages. tests/integration/test_ci_commands.py runs them, as
# synthesized, in a fresh virtualenv on a clean checkout: they must install all they import.
UNIT_TEST_COMMANDS = [
    _install("ml_code/requirements.txt", "pipelines/requirements.txt", "requirements-tests.txt"),
    "python -m pytest tests/unit/ml tests/unit/pipelines -q",
]
TRAIN_COMMANDS = [
    _install("pipelines/requirements.txt"),
    "python -m pipelines.run --config config/$ENVIRONMENT.yaml --start --wait",
]


class BuildPipeline(Construct):
    """The CI/CD of the model build, for a CodeCommit or CodeConnections source.

    Every role here is immutable (``without_policy_updates``) with one customer-managed
    policy that lists exactly what it needs: CDK's integrations would otherwise add broad
    grants (``s3:GetObject*``, ``kms:ReEncrypt*``, report groups) as inline policies. The
    pipeline runs its actions with its own role, so there are no per-action roles.

    Attributes:
        pipeline: the CodePipeline (V2).
        projects: CodeBuild projects by stage: Tests, Images, Train.
        repository: the CodeCommit repository, when the source is CodeCommit.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        artifacts_bucket_arn: str,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        repositories: list[ecr.IRepository],
        pipeline_role: iam.IRole,
    ) -> None:
        super().__init__(scope, id_)
        assert config.model_build is not None
        source_config = config.model_build.source
        self.config = config
        self.data_key, self.logs_key = data_key, logs_key
        stack = cdk.Stack.of(self)
        name = config.ci_pipeline_name
        artifacts = s3.Bucket.from_bucket_attributes(
            self, "ArtifactsBucket", bucket_arn=artifacts_bucket_arn, encryption_key=data_key
        )
        self.artifact_objects = f"{artifacts_bucket_arn}/{config.ci_artifact_prefix}/*"
        self.artifacts_bucket_arn = artifacts_bucket_arn

        source_output = codepipeline.Artifact("Source")
        self.repository: codecommit.IRepository | None = None
        source: codepipeline.IAction
        if source_config.kind == "codecommit":
            self.repository = codecommit.Repository(
                self,
                "Repository",
                repository_name=source_config.repository,
                kms_key=data_key,
                description=f"{config.name_prefix}: model-build code (ml_code/, config/)",
            )
            source_statements = [
                iam.PolicyStatement(
                    sid="ReadTheRepository",
                    actions=[
                        "codecommit:GetBranch",
                        "codecommit:GetCommit",
                        "codecommit:GetRepository",
                        "codecommit:UploadArchive",
                        "codecommit:GetUploadArchiveStatus",
                        "codecommit:CancelUploadArchive",
                    ],
                    resources=[self.repository.repository_arn],
                )
            ]
            event_role = self._immutable_role(
                "SourceEvents",
                "events.amazonaws.com",
                [
                    iam.PolicyStatement(
                        sid="StartThePipeline",
                        actions=["codepipeline:StartPipelineExecution"],
                        resources=[stack.format_arn(service="codepipeline", resource=name)],
                    )
                ],
            )
            source = actions.CodeCommitSourceAction(
                action_name="Source",
                repository=self.repository,
                branch=source_config.branch,
                output=source_output,
                # The action's own rule matches the branch name only, so a tag of the same name would
                # start a build too; ours (below, once the pipeline exists) also requires a branch.
                trigger=actions.CodeCommitTrigger.NONE,
            )
        else:
            owner, repo = source_config.repository.split("/", 1)
            source_statements = [
                iam.PolicyStatement(
                    sid="UseTheConnection",
                    actions=["codeconnections:UseConnection", "codestar-connections:UseConnection"],
                    resources=[str(source_config.connection_arn)],
                )
            ]
            source = actions.CodeStarConnectionsSourceAction(
                action_name="Source",
                connection_arn=str(source_config.connection_arn),
                owner=owner,
                repo=repo,
                branch=source_config.branch,
                output=source_output,
                trigger_on_push=False,
            )

        self.projects = {
            "Tests": self._project("Tests", UNIT_TEST_COMMANDS),
            "Images": self._project(
                "Images", IMAGES_COMMANDS, privileged=True, statements=push_image_statements(repositories)
            ),
            "Train": self._project(
                "Train",
                TRAIN_COMMANDS,
                statements=upsert_and_run_statements(self, config, pipeline_role, artifacts_bucket_arn, data_key),
                hours=8,
            ),
        }
        role = self._immutable_role(
            "Pipeline",
            "codepipeline.amazonaws.com",
            [
                iam.PolicyStatement(
                    sid="Artifacts",
                    actions=["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                    resources=[self.artifact_objects],
                ),
                iam.PolicyStatement(
                    sid="ArtifactsBucket",
                    actions=["s3:GetBucketVersioning", "s3:GetBucketLocation", "s3:ListBucket"],
                    resources=[artifacts_bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="DataKey",
                    actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[data_key.key_arn],
                ),
                iam.PolicyStatement(
                    sid="RunTheBuilds",
                    actions=["codebuild:StartBuild", "codebuild:BatchGetBuilds", "codebuild:StopBuild"],
                    resources=[p.project_arn for p in self.projects.values()],
                ),
                *source_statements,
            ],
            source_arn=stack.format_arn(service="codepipeline", resource=name),
        )

        def build(stage: str, action: str) -> codepipeline.StageProps:
            return codepipeline.StageProps(
                stage_name=stage,
                actions=[
                    actions.CodeBuildAction(
                        action_name=action,
                        project=self.projects[stage if stage != "UnitTests" else "Tests"],
                        input=source_output,
                    )
                ],
            )

        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_name=name,
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=artifacts,
            role=role,
            use_pipeline_role_for_actions=True,
            cross_account_keys=False,
            restart_execution_on_update=False,
            stages=[
                codepipeline.StageProps(stage_name="Source", actions=[source]),
                build("UnitTests", "UnitTests"),
                build("Images", "BuildAndPushImages"),
                build("Train", "UpsertAndRunSageMakerPipeline"),
            ],
            triggers=None
            if source_config.kind == "codecommit"
            else [
                codepipeline.TriggerProps(
                    provider_type=codepipeline.ProviderType.CODE_STAR_SOURCE_CONNECTION,
                    git_configuration=codepipeline.GitConfiguration(
                        source_action=source,
                        push_filter=[
                            codepipeline.GitPushFilter(
                                branches_includes=[source_config.branch],
                                file_paths_includes=list(source_config.file_paths),
                            )
                        ],
                    ),
                )
            ],
        )

        if self.repository is not None:
            events.Rule(
                self,
                "PushToBranch",
                description=f"{config.name_prefix}: a push to {source_config.branch} starts the model build",
                event_pattern=events.EventPattern(
                    source=["aws.codecommit"],
                    detail_type=["CodeCommit Repository State Change"],
                    resources=[self.repository.repository_arn],
                    detail={
                        "event": ["referenceCreated", "referenceUpdated"],
                        "referenceType": ["branch"],
                        "referenceName": [source_config.branch],
                    },
                ),
                targets=[targets.CodePipeline(self.pipeline, event_role=event_role)],
            )

    def _immutable_role(
        self, name: str, service: str, statements: list[iam.PolicyStatement], *, source_arn: str | None = None
    ) -> iam.IRole:
        # Named (stacks.principals): the foundation's bucket and repository policies let only these roles
        # write what CI reads and push images. The trust names the account (and the project or pipeline).
        role = iam.Role(
            self,
            f"{name}Role",
            role_name=ci_role_name(self.config, name.lower()),
            assumed_by=service_principal(self, service, source_arn=source_arn),
            description=f"{self.config.name_prefix} model build: {name}",
        )
        iam.ManagedPolicy(
            self,
            f"{name}Policy",
            roles=[role],
            statements=statements,
            description=f"{self.config.name_prefix} model build: {name}",
        )
        return role.without_policy_updates()

    def _project(
        self,
        name: str,
        commands: list[str],
        *,
        privileged: bool = False,
        statements: list[iam.PolicyStatement] | None = None,
        hours: int = 1,
    ) -> codebuild.PipelineProject:
        config = self.config
        project_name = f"{config.name_prefix}-model-build-{name.lower()}"
        log_group = encrypted_log_group(self, f"{name}Logs", config=config, key=self.logs_key)
        role = self._immutable_role(
            f"{name}Project",
            "codebuild.amazonaws.com",
            [
                iam.PolicyStatement(
                    sid="OwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadTheSourceArtifact",
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=[self.artifact_objects],
                ),
                iam.PolicyStatement(
                    sid="ArtifactsBucket",
                    actions=["s3:GetBucketAcl", "s3:GetBucketLocation"],
                    resources=[self.artifacts_bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="DataKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[self.data_key.key_arn],
                ),
                *(statements or []),
            ],
            source_arn=cdk.Stack.of(self).format_arn(
                service="codebuild", resource="project", resource_name=project_name
            ),
        )
        # Outside the VPC on purpose: the subnets have no route out (no NAT), and these builds need the
        # internet (pip from PyPI, Docker base images). They touch AWS only through their own role, which
        # reaches this environment's artifacts prefix, key, repositories and pipeline; a NAT for CI alone
        # would open egress from the subnets that hold the data.
        return codebuild.PipelineProject(
            self,
            name,
            project_name=project_name,
            description=f"{config.name_prefix} model build: {name}",
            role=role,
            encryption_key=self.data_key,
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.MEDIUM,
                privileged=privileged,  # only the image build runs Docker
            ),
            environment_variables={
                "ENVIRONMENT": codebuild.BuildEnvironmentVariable(value=config.name),
                "NAME_PREFIX": codebuild.BuildEnvironmentVariable(value=config.name_prefix),
                "REGISTRY": codebuild.BuildEnvironmentVariable(value=config.registry),
            },
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
            timeout=cdk.Duration.hours(hours),
            build_spec=codebuild.BuildSpec.from_object(
                {
                    "version": "0.2",
                    "phases": {"install": {"runtime-versions": {"python": PYTHON}}, "build": {"commands": commands}},
                }
            ),
        )
