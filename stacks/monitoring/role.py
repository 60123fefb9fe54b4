"""The role both engines' monitoring jobs run as: this endpoint's data, the data key, its network, its logs."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import (
    MODEL_MONITOR_DATA_NAMESPACE,
    MODEL_MONITOR_MODEL_NAMESPACE,
    EnvironmentConfig,
    MonitoringEngine,
)
from stacks.endpoint.source import source_model_statements
from stacks.sagemaker_access import (
    EC2_DESCRIBE,
    VPC_INTERFACE_ACTIONS,
    sagemaker_logs_statements,
    service_principal,
    vpc_interface_statements,
)

# Model Monitor names its executions itself (the schedule's job definition cannot prefix them): the
# analysis as model-monitoring-<time>-<hash>, the ground-truth merge of model quality as
# groundtruth-merge-<time>-<hash>. Their log streams are named after them.
MODEL_MONITOR_JOB_PREFIXES = ("model-monitoring-", "groundtruth-merge-")
PROCESSING_LOGS = ("/aws/sagemaker/ProcessingJobs",)


class MonitoringJobRole(Construct):
    """``<prefix>-monitoring-job``: assumed by SageMaker for this endpoint's monitoring jobs.

    Reads the endpoint's captured data, ground truth and copied baselines, writes its reports,
    uses the data key for all of them and for the job volumes, creates network interfaces in this
    environment's subnets with the endpoint's security group, and writes the jobs' logs. The
    platform engine's jobs pull the source environment's training image; Model Monitor's publish
    their metrics into SageMaker's namespaces.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        source: EnvironmentConfig,
        data_key: kms.IKey,
        monitoring_bucket_arn: str,
        vpc: ec2.IVpc,
        subnet_ids: Sequence[str],
        security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, id_)
        assert config.monitoring is not None
        engine = config.monitoring.engine
        self.role = iam.Role(
            self,
            "Role",
            role_name=config.monitoring_role_name,
            assumed_by=service_principal(self, "sagemaker.amazonaws.com"),
            description=f"{config.name_prefix}: monitoring jobs of {config.endpoint_name}",
        )
        read = [config.capture_prefix + "/" + config.endpoint_name, config.ground_truth_prefix]
        read += [config.monitoring_baseline_prefix, config.monitoring_report_prefix]
        statements = [
            iam.PolicyStatement(
                sid="ListMonitoringBucket",
                actions=["s3:ListBucket"],
                resources=[monitoring_bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}/*" for prefix in read]}},
            ),
            iam.PolicyStatement(
                sid="ReadCaptureGroundTruthBaselines",
                actions=["s3:GetObject"],
                resources=[f"{monitoring_bucket_arn}/{prefix}/*" for prefix in read],
            ),
            iam.PolicyStatement(
                sid="WriteReports",
                actions=["s3:PutObject"],
                resources=[f"{monitoring_bucket_arn}/{config.monitoring_report_prefix}/*"],
            ),
            iam.PolicyStatement(
                sid="UseTheDataKey",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[data_key.key_arn],
            ),
            iam.PolicyStatement(
                sid="DataKeyGrantsForJobVolumes",
                actions=["kms:CreateGrant"],
                resources=[data_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            *(
                sagemaker_logs_statements(self, job_name_prefix=config.monitoring_job_prefix, groups=PROCESSING_LOGS)
                if engine is MonitoringEngine.PLATFORM
                else _model_monitor_logs(self)
            ),
            *vpc_interface_statements(
                self,
                vpc_id=vpc.vpc_id,
                subnet_ids=subnet_ids,
                security_group_id=security_group.security_group_id,
                describe=EC2_DESCRIBE,
                actions=VPC_INTERFACE_ACTIONS,
            ),
        ]
        if engine is MonitoringEngine.PLATFORM:
            statements += [
                # The source's training image, which holds ml_code.
                *source_model_statements(
                    source, sid_prefix="Source", packages=False, artifacts=False, key=False, images=("training",)
                ),
                iam.PolicyStatement(sid="RegistryToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            ]
        else:
            statements.append(
                iam.PolicyStatement(
                    sid="ModelMonitorMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    # AWS's pages write these namespaces with and without a leading slash: both are admitted.
                    conditions={
                        "StringEquals": {
                            "cloudwatch:namespace": [
                                namespace
                                for name in (MODEL_MONITOR_DATA_NAMESPACE, MODEL_MONITOR_MODEL_NAMESPACE)
                                for namespace in (name, f"/{name}")
                            ]
                        }
                    },
                )
            )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            roles=[self.role],
            description=f"{config.name_prefix} monitoring jobs of {config.endpoint_name}",
            statements=statements,
        )


def _model_monitor_logs(scope: Construct) -> list[iam.PolicyStatement]:
    first, second = MODEL_MONITOR_JOB_PREFIXES
    return sagemaker_logs_statements(
        scope, job_name_prefix=first, groups=PROCESSING_LOGS, extra_streams=[(PROCESSING_LOGS[0], second)]
    )
