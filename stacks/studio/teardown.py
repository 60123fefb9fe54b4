"""The custom resource that empties the domain before CloudFormation deletes it."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.config import EnvironmentConfig, RemovalPolicyName
from stacks.platform_stack import encrypted_log_group
from stacks.sagemaker_access import domain_arns, sagemaker_arn, vpc_interface_statements

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
RUNTIME = lambda_.Runtime.PYTHON_3_14


class DomainTeardown(Construct):
    """Deletes the domain's apps, spaces and user profiles (and, when configured, the domain
    with its home EFS) on stack deletion, so that deletion succeeds after users have worked.

    The custom resource depends on the domain and every user profile, so CloudFormation
    deletes it, and runs the teardown, before them.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        domain: sagemaker.CfnDomain,
        dependents: list[cdk.CfnResource],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        data_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, id_)
        destroy = config.retention.removal_policy is RemovalPolicyName.DESTROY

        def arn(resource: str, name: str) -> str:
            return sagemaker_arn(self, resource, name)

        domain_id = domain.attr_domain_id
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Studio teardown custom resource",
        )
        security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="Studio teardown: HTTPS to the SageMaker and S3 endpoints",
        )
        security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC and S3 gateway endpoints")
        dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=data_key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            # A dead-letter queue of one function only: no queue may redrive into it.
            redrive_allow_policy=sqs.RedriveAllowPolicy(redrive_permission=sqs.RedrivePermission.DENY_ALL),
        )
        log_group = encrypted_log_group(self, "Logs", config=config, key=logs_key)
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            # Resolved by CloudFormation at deploy time from Powertools' public parameter: no lookup at synth.
            ssm.StringParameter.value_for_string_parameter(
                self, f"/aws/service/powertools/python/x86_64/{RUNTIME.name}/{config.powertools_version}"
            ),
        )
        function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="studio_teardown.handler.lambda_handler",
            code=lambda_.Code.from_asset(str(LAMBDAS), exclude=["*", "!studio_teardown", "!studio_teardown/*.py"]),
            layers=[powertools],
            role=role,
            timeout=cdk.Duration.minutes(15),
            memory_size=256,
            reserved_concurrent_executions=2,
            dead_letter_queue=dead_letters,
            environment={"POWERTOOLS_SERVICE_NAME": "studio-teardown", "POWERTOOLS_LOG_LEVEL": "INFO"},
            environment_encryption=data_key,
            log_group=log_group,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            description=f"{config.name_prefix}: empties the Studio domain before stack deletion",
        )
        iam.ManagedPolicy(
            self,
            "Policy",
            description="Studio teardown: this domain's apps, spaces, profiles; the Lambda's own plumbing",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="ListInsideTheDomain",
                    actions=["sagemaker:ListApps", "sagemaker:ListSpaces", "sagemaker:ListUserProfiles"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="DeleteInsideThisDomainOnly",
                    actions=[
                        "sagemaker:DeleteApp",
                        "sagemaker:DeleteSpace",
                        "sagemaker:DeleteUserProfile",
                        "sagemaker:DescribeDomain",
                        "sagemaker:DeleteDomain",
                    ],
                    resources=domain_arns(self, domain_id),
                ),
                iam.PolicyStatement(
                    sid="OwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                ),
                iam.PolicyStatement(
                    sid="EncryptedEnvironmentAndQueue",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[data_key.key_arn],
                ),
                *vpc_interface_statements(
                    self,
                    vpc_id=vpc.vpc_id,
                    subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
                    security_group_id=security_group.security_group_id,
                    describe=["ec2:DescribeNetworkInterfaces"],
                    actions=[
                        "ec2:CreateNetworkInterface",
                        "ec2:DeleteNetworkInterface",
                        "ec2:AssignPrivateIpAddresses",
                        "ec2:UnassignPrivateIpAddresses",
                    ],
                ),
            ],
        )
        resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=function.function_arn,
            resource_type="Custom::StudioTeardown",
            properties={
                "DomainId": domain_id,
                "TeardownOnDelete": "true" if destroy else "false",
                "HomeEfsRetention": "Delete" if config.studio.home_efs_retention == "delete" else "Retain",
            },
        )
        # Deleted before the domain and the profiles: CloudFormation deletes dependents first.
        resource.node.add_dependency(domain, *dependents)
        self.function = function
