"""The role the SageMaker Pipeline's jobs run as, and the security group they run in."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.sagemaker_access import (
    EC2_DESCRIBE,
    VPC_INTERFACE_ACTIONS,
    data_statements,
    job_statements,
    pass_own_role_statement,
    pull_images_statement,
    sagemaker_arn,
    sagemaker_logs_statements,
    service_principal,
    vpc_interface_statements,
)

TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"


def batch_transform_statements(
    scope: Construct, *, config: EnvironmentConfig, data_key: kms.IKey
) -> list[iam.PolicyStatement]:
    """The batch pipeline's transform jobs (``pipelines.batch``), which run as this role too.

    A transform job takes its network settings from its model, which ``pipelines.batch`` creates
    in the private subnets with network isolation; the job itself must use the data key on its
    volume and output (SageMaker's ``VolumeKmsKey`` and ``OutputKmsKey`` condition keys apply to
    CreateTransformJob).
    """
    jobs = sagemaker_arn(scope, "transform-job", f"{config.batch_pipeline_name}-*")
    return [
        iam.PolicyStatement(
            sid="BatchTransformWithTheDataKey",
            actions=["sagemaker:CreateTransformJob"],
            resources=[jobs],
            conditions={
                "StringEquals": {"sagemaker:VolumeKmsKey": data_key.key_arn, "sagemaker:OutputKmsKey": data_key.key_arn}
            },
        ),
        iam.PolicyStatement(
            sid="BatchTransformFollowAndStop",
            actions=["sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob", "sagemaker:AddTags"],
            resources=[jobs],
        ),
    ]


class PipelineExecution(Construct):
    """The pipeline's execution role (named, so the offline definition can name it) and job security group.

    Attributes:
        role: assumed by SageMaker for every job of the pipeline.
        security_group: the jobs' security group: themselves, and HTTPS to the endpoints.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        data_bucket_arn: str,
        artifacts_bucket_arn: str,
        repositories: list[ecr.IRepository],
    ) -> None:
        super().__init__(scope, id_)

        def sm(resource: str, name: str) -> str:
            return sagemaker_arn(self, resource, name)

        self.security_group = ec2.SecurityGroup(
            self,
            "JobSecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description=f"{config.name_prefix} pipeline jobs: each other, and HTTPS to the endpoints",
        )
        sg = self.security_group
        sg.add_ingress_rule(sg, ec2.Port.all_tcp(), "between the instances of one job (distributed training)")
        sg.add_egress_rule(sg, ec2.Port.all_tcp(), "between the instances of one job")
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC and S3 gateway endpoints")

        self.role = iam.Role(
            self,
            "Role",
            role_name=config.pipeline_role_name,
            assumed_by=service_principal(self, "sagemaker.amazonaws.com"),
            description=f"{config.name_prefix}: jobs of the model-build SageMaker Pipeline",
        )
        group = config.model_package_group_name
        subnet_ids = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
        iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            description=f"{config.name_prefix} model-build pipeline jobs",
            statements=[
                # Job names carry the pipeline's name: the definition sets use_custom_job_prefix and
                # base_job_name=<pipeline name>-<step>, so this role reaches no other environment's jobs.
                *job_statements(
                    self,
                    sid="PipelineJobs",
                    job_name_prefix=f"{config.build_pipeline_name}-",
                    subnet_ids=subnet_ids,
                    security_group_ids=[sg.security_group_id],
                    data_key=data_key,
                    # The Spark preprocess reads S3 itself, so it runs without network isolation.
                    unisolated_processing_prefix=f"{config.build_pipeline_name}-spark-preprocess"
                    if config.model_build is not None and config.model_build.pipeline.spark_preprocessing
                    else None,
                ),
                iam.PolicyStatement(
                    sid="RegisterIntoThisEnvironmentsGroup",
                    actions=[
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:DescribeModelPackage",
                        "sagemaker:AddTags",
                    ],
                    resources=[sm("model-package-group", group), sm("model-package", f"{group}/*")],
                ),
                iam.PolicyStatement(
                    # Only for a person's approval: whoever starts the pipeline cannot register a version
                    # as already Approved through its ModelApprovalStatus parameter.
                    sid="RegisterPendingApprovalOnly",
                    actions=["sagemaker:CreateModelPackage"],
                    resources=[sm("model-package-group", group), sm("model-package", f"{group}/*")],
                    conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}},
                ),
                pass_own_role_statement(self.role),
                *data_statements(
                    data_bucket_arn=data_bucket_arn,
                    artifacts_bucket_arn=artifacts_bucket_arn,
                    data_key=data_key,
                    # Its outputs, the splits and the model artifacts, under the pipeline's own prefix.
                    # Batch transform output and capture under the batch pipeline's prefix (pipelines.batch).
                    write_prefixes=[config.build_pipeline_name, config.batch_pipeline_name],
                ),
                iam.PolicyStatement(
                    sid="DataKeyGrantsForJobVolumes",
                    actions=["kms:CreateGrant"],
                    resources=[data_key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                pull_images_statement(repositories),
                iam.PolicyStatement(sid="RegistryToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                *sagemaker_logs_statements(
                    self,
                    job_name_prefix=f"{config.build_pipeline_name}-",
                    extra_streams=[(TRANSFORM_LOG_GROUP, f"{config.batch_pipeline_name}-")],
                ),
                *batch_transform_statements(self, config=config, data_key=data_key),
                iam.PolicyStatement(
                    sid="JobMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                ),
                *vpc_interface_statements(
                    self,
                    vpc_id=vpc.vpc_id,
                    subnet_ids=subnet_ids,
                    security_group_id=sg.security_group_id,
                    describe=EC2_DESCRIBE,
                    actions=VPC_INTERFACE_ACTIONS,
                ),
            ],
        )
