"""IAM statements that SageMaker roles of this platform share: data, key, images, logs, VPC interfaces.

The Studio personas, the pipeline's job role and the VPC Lambda build their policies from
these, so one data-access rule has one definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# Describe calls a VPC job or endpoint makes for its network interfaces; IAM has no resource-level
# permissions for them.
EC2_DESCRIBE = [
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
# What SageMaker does with a VPC job's or endpoint's network interfaces, as the job's or model's role.
VPC_INTERFACE_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
]


def sagemaker_arn(scope: Construct, resource: str, name: str) -> str:
    return cdk.Stack.of(scope).format_arn(service="sagemaker", resource=resource, resource_name=name)


def domain_arns(scope: Construct, domain_id: str) -> list[str]:
    """A Studio domain and everything users create inside it: apps, spaces, user profiles."""
    return [
        sagemaker_arn(scope, "domain", domain_id),
        *(sagemaker_arn(scope, kind, f"{domain_id}/*") for kind in ("app", "space", "user-profile")),
    ]


def data_statements(
    *, data_bucket_arn: str, artifacts_bucket_arn: str, data_key: kms.IKey, write_prefixes: Sequence[str]
) -> list[iam.PolicyStatement]:
    """Read the data and artifacts buckets, write the artifacts bucket under ``write_prefixes`` only,
    use the data key.

    People and the pipeline write under different prefixes (``stacks.principals``): nobody writes
    where CI, the pipeline or the registry read unless they are CI.
    """
    return [
        iam.PolicyStatement(
            sid="ReadData",
            actions=["s3:GetObject", "s3:ListBucket"],
            resources=[data_bucket_arn, f"{data_bucket_arn}/*"],
        ),
        iam.PolicyStatement(
            sid="ReadArtifacts",
            actions=["s3:GetObject", "s3:ListBucket"],
            resources=[artifacts_bucket_arn, f"{artifacts_bucket_arn}/*"],
        ),
        iam.PolicyStatement(
            sid="WriteOwnArtifactPrefixes",
            actions=["s3:PutObject"],
            resources=[f"{artifacts_bucket_arn}/{prefix}/*" for prefix in write_prefixes],
        ),
        iam.PolicyStatement(
            sid="UseTheDataKey",
            actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            resources=[data_key.key_arn],
        ),
    ]


def pull_images_statement(repositories: list[ecr.IRepository]) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="PullImages",
        actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
        resources=[r.repository_arn for r in repositories],
    )


def pass_own_role_statement(role: iam.IRole) -> iam.PolicyStatement:
    """Jobs started by this role run as this role, and only as it."""
    return iam.PolicyStatement(
        sid="PassOwnRoleToSageMakerJobs",
        actions=["iam:PassRole"],
        resources=[role.role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


# SageMaker writes every job's logs into one log group per job type and account, into a stream
# named after the job: the stream, not the group, is what belongs to one environment.
JOB_LOG_GROUPS = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs")
STUDIO_LOG_GROUP = "/aws/sagemaker/studio"
# The groups SageMaker creates at run time for this platform's jobs and Studio apps (account-wide).
SAGEMAKER_LOG_GROUPS = (*JOB_LOG_GROUPS, STUDIO_LOG_GROUP)


def sagemaker_logs_statements(
    scope: Construct,
    *,
    job_name_prefix: str,
    extra_streams: Sequence[tuple[str, str]] = (),
    groups: Sequence[str] = JOB_LOG_GROUPS,
) -> list[iam.PolicyStatement]:
    """Write the logs of this environment's jobs (named ``<job_name_prefix>...``) into SageMaker's job log groups.

    Streams are created in the account-wide groups (CreateLogStream takes the group), but events are
    written only into streams of this environment's jobs. No ``logs:CreateLogGroup``: the groups are
    account-wide and shared by the environments of one account. ``extra_streams`` adds (group, stream
    prefix) pairs, e.g. Studio's apps of one domain; ``groups`` narrows the job groups (processing only).
    """
    stack = cdk.Stack.of(scope)
    streams = [*((group, job_name_prefix) for group in groups), *extra_streams]

    def arn(name: str) -> str:
        return stack.format_arn(
            service="logs", resource="log-group", resource_name=name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )

    return [
        iam.PolicyStatement(
            sid="SageMakerLogStreams",
            actions=["logs:CreateLogStream", "logs:DescribeLogStreams"],
            resources=sorted({arn(group) for group, _ in streams}),
        ),
        iam.PolicyStatement(
            sid="SageMakerLogEventsOfThisEnvironment",
            actions=["logs:PutLogEvents"],
            resources=[arn(f"{group}:log-stream:{prefix}*") for group, prefix in streams],
        ),
    ]


def vpc_interface_statements(
    scope: Construct,
    *,
    vpc_id: str,
    subnet_ids: Sequence[str],
    security_group_id: str,
    actions: list[str],
    describe: list[str],
) -> list[iam.PolicyStatement]:
    """What something running in the VPC needs for its network interfaces: Describe* (no resource-level
    permissions exist for them), and ``actions`` on this environment's subnets, its own security group,
    and interfaces in this environment's VPC (their ids are chosen by EC2, so the VPC is a condition)."""
    stack = cdk.Stack.of(scope)

    def ec2_arn(resource: str, name: str) -> str:
        return stack.format_arn(service="ec2", resource=resource, resource_name=name)

    return [
        iam.PolicyStatement(sid="NetworkInterfacesDescribe", actions=describe, resources=["*"]),
        iam.PolicyStatement(
            sid="OwnSubnetsAndSecurityGroup",
            actions=actions,
            resources=[*(ec2_arn("subnet", s) for s in subnet_ids), ec2_arn("security-group", security_group_id)],
        ),
        iam.PolicyStatement(
            sid="NetworkInterfacesInThisVpc",
            actions=actions,
            resources=[ec2_arn("network-interface", "*")],
            conditions={"ArnEquals": {"ec2:Vpc": ec2_arn("vpc", vpc_id)}},
        ),
    ]


def job_statements(
    scope: Construct,
    *,
    sid: str,
    job_name_prefix: str,
    subnet_ids: Sequence[str],
    security_group_ids: Sequence[str],
    data_key: kms.IKey,
    unisolated_processing_prefix: str | None = None,
    processing_only: bool = False,
) -> list[iam.PolicyStatement]:
    """Create, follow and stop training and processing jobs named ``<job_name_prefix>...``
    (processing jobs alone with ``processing_only``).

    A job may be created only in this environment's subnets and security groups, with network
    isolation, encrypted traffic between its instances, and the data key on its volumes and
    outputs: a job elsewhere, or with another key, is refused by IAM rather than by convention.
    Processing jobs named ``unisolated_processing_prefix...`` (the Spark preprocess, which reads S3
    itself) may run without network isolation, under every other condition.
    """
    kinds = ("processing",) if processing_only else ("training", "processing")
    jobs = [sagemaker_arn(scope, f"{kind}-job", f"{job_name_prefix}*") for kind in kinds]
    in_this_environment = {
        "Null": {"sagemaker:VpcSubnets": "false", "sagemaker:VpcSecurityGroupIds": "false"},
        "ForAllValues:StringEquals": {
            "sagemaker:VpcSubnets": list(subnet_ids),
            "sagemaker:VpcSecurityGroupIds": list(security_group_ids),
        },
        "StringEquals": {"sagemaker:VolumeKmsKey": data_key.key_arn, "sagemaker:OutputKmsKey": data_key.key_arn},
    }
    unisolated = []
    if unisolated_processing_prefix is not None:
        unisolated.append(
            iam.PolicyStatement(
                sid=f"{sid}CreateUnisolatedProcessing",
                actions=["sagemaker:CreateProcessingJob"],
                resources=[sagemaker_arn(scope, "processing-job", f"{unisolated_processing_prefix}*")],
                conditions={**in_this_environment, "Bool": {"sagemaker:InterContainerTrafficEncryption": "true"}},
            )
        )
    return [
        iam.PolicyStatement(
            sid=f"{sid}CreateInThisEnvironment",
            actions=[f"sagemaker:Create{kind.title()}Job" for kind in kinds],
            resources=jobs,
            conditions={
                **in_this_environment,
                "Bool": {"sagemaker:NetworkIsolation": "true", "sagemaker:InterContainerTrafficEncryption": "true"},
            },
        ),
        *unisolated,
        iam.PolicyStatement(
            sid=f"{sid}FollowAndStop",
            actions=[
                *(f"sagemaker:{verb}{kind.title()}Job" for kind in kinds for verb in ("Describe", "Stop")),
                "sagemaker:AddTags",
            ],
            resources=jobs,
        ),
    ]


def service_principal(scope: Construct, service: str, *, source_arn: str | None = None) -> iam.IPrincipal:
    """A service principal that may act only for this account (and ``source_arn``): no confused deputy.

    The service sets ``aws:SourceAccount`` (and ``aws:SourceArn``, the resource it acts for) when it
    assumes the role; a request made for another account's resource does not match.
    """
    conditions: dict[str, dict[str, str]] = {"StringEquals": {"aws:SourceAccount": cdk.Stack.of(scope).account}}
    if source_arn is not None:
        conditions["ArnLike"] = {"aws:SourceArn": source_arn}
    return iam.ServicePrincipal(service).with_conditions(conditions)
