"""Who may do what to an environment's endpoint: the model's role, the deploy's two roles.

- **Model role** (``<prefix>-endpoint-model``): what the served container runs as. It reads the
  version's artifact and pulls its image from the source environment, writes data capture into this
  environment's monitoring bucket, and makes the endpoint's network interfaces in this VPC.
- **Deployer role** (``<prefix>-endpoint-deployer``): the one role the source environment's deploy
  functions assume here. It may update this one stack (passing the CloudFormation role), follow it,
  read which config and model the endpoint really serves, invoke the endpoint for the smoke test, and
  delete the retained configs and models it no longer serves. It can create nothing itself.
- **CloudFormation role** (``<prefix>-endpoint-cloudformation``): what CloudFormation acts as when the
  deploy updates the stack with its previous template. It may create and replace this environment's
  model, endpoint config and endpoint (named ``<prefix>-v…``, in this VPC, isolated, with the data key)
  and register their autoscaling, nothing else: a deploy changes parameters, never the template.

The deployer role trusts the source account with a condition on the calling role's ARN, not the
role's ARN as principal: IAM would refuse a trust in a role that does not exist yet, and the source
environment may be deployed after this one.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EndpointKind, EnvironmentConfig
from stacks.endpoint.source import source_model_statements
from stacks.principals import role_arn
from stacks.sagemaker_access import (
    EC2_DESCRIBE,
    VPC_INTERFACE_ACTIONS,
    sagemaker_arn,
    service_principal,
    vpc_interface_statements,
)

AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_ROLE = f"aws-service-role/{AUTOSCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"


def endpoint_log_group_name(config: EnvironmentConfig) -> str:
    """Where SageMaker writes the endpoint's container logs."""
    return f"/aws/sagemaker/Endpoints/{config.endpoint_name}"


class EndpointAccess(Construct):
    """The endpoint's three roles.

    Attributes:
        model_role, deployer_role, cloudformation_role: see the module docstring.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        source: EnvironmentConfig,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        data_key: kms.IKey,
        monitoring_bucket_arn: str,
        alarm_names: list[str],
    ) -> None:
        super().__init__(scope, id_)
        endpoint = config.endpoint
        assert endpoint is not None
        stack = cdk.Stack.of(self)
        instance = endpoint.kind == EndpointKind.INSTANCE
        subnet_ids = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
        served = f"{config.name_prefix}-v*"
        endpoint_arn = sagemaker_arn(self, "endpoint", config.endpoint_name)
        models = sagemaker_arn(self, "model", served)
        endpoint_configs = sagemaker_arn(self, "endpoint-config", served)
        log_group_arn = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=endpoint_log_group_name(config),
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )
        alarms = [
            stack.format_arn(
                service="cloudwatch", resource="alarm", resource_name=name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
            )
            for name in alarm_names
        ]

        # --- the model's role --------------------------------------------------------------------
        self.model_role = iam.Role(
            self,
            "ModelRole",
            role_name=config.endpoint_model_role_name,
            assumed_by=service_principal(self, "sagemaker.amazonaws.com"),
            description=f"{config.name_prefix}: the endpoint's model container",
        )
        model_statements = [
            *source_model_statements(source, sid_prefix="Served", packages=False, images=("inference",)),
            iam.PolicyStatement(sid="RegistryToken", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                sid="OwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{log_group_arn}:log-stream:*"],
            ),
            # Deployment guardrails read the rollback alarms as the model's role (SageMaker's guardrail docs).
            iam.PolicyStatement(sid="RollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=alarms),
        ]
        if endpoint.data_capture.enabled:
            model_statements += [
                iam.PolicyStatement(
                    sid="WriteDataCapture",
                    actions=["s3:PutObject"],
                    resources=[f"{monitoring_bucket_arn}/{config.capture_prefix}/*"],
                ),
                iam.PolicyStatement(
                    sid="EncryptDataCapture",
                    actions=["kms:GenerateDataKey", "kms:Encrypt", "kms:DescribeKey"],
                    resources=[data_key.key_arn],
                ),
            ]
        if instance:
            model_statements += vpc_interface_statements(
                self,
                vpc_id=vpc.vpc_id,
                subnet_ids=subnet_ids,
                security_group_id=security_group.security_group_id,
                describe=EC2_DESCRIBE,
                actions=VPC_INTERFACE_ACTIONS,
            )
        iam.ManagedPolicy(
            self,
            "ModelPolicy",
            roles=[self.model_role],
            description=f"{config.name_prefix}: the endpoint's model reads its version, writes capture",
            statements=model_statements,
        )

        # --- the role CloudFormation acts as when a deploy updates the stack ---------------------
        self.cloudformation_role = iam.Role(
            self,
            "CloudFormationRole",
            role_name=config.endpoint_cloudformation_role_name,
            # CloudFormation documents no source keys for service roles; this role is only ever passed
            # (iam:PassRole, which the deployer role alone holds), and a role cannot be passed across accounts.
            assumed_by=iam.ServicePrincipal("cloudformation.amazonaws.com"),
            description=f"{config.name_prefix}: CloudFormation, when a deploy sets the endpoint's model version",
        )
        create_model_conditions: dict[str, dict[str, object]] = {}
        if instance:
            create_model_conditions = {
                "Null": {"sagemaker:VpcSubnets": "false", "sagemaker:VpcSecurityGroupIds": "false"},
                "ForAllValues:StringEquals": {
                    "sagemaker:VpcSubnets": subnet_ids,
                    "sagemaker:VpcSecurityGroupIds": [security_group.security_group_id],
                },
                "Bool": {"sagemaker:NetworkIsolation": "true"},
            }
        self.cloudformation_policy = iam.ManagedPolicy(
            self,
            "CloudFormationPolicy",
            roles=[self.cloudformation_role],
            description=f"{config.name_prefix}: replace the endpoint's model and config, update the endpoint",
            statements=[
                iam.PolicyStatement(
                    sid="CreateModelInThisVpc",
                    actions=["sagemaker:CreateModel"],
                    resources=[models],
                    conditions=create_model_conditions or None,
                ),
                iam.PolicyStatement(
                    sid="ServedModelsAndConfigs",
                    actions=[
                        "sagemaker:DescribeModel",
                        "sagemaker:DeleteModel",
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:AddTags",
                    ],
                    resources=[models, endpoint_configs],
                ),
                iam.PolicyStatement(
                    # CreateEndpoint and UpdateEndpoint are authorized on the endpoint and on the config.
                    sid="TheEndpoint",
                    actions=[
                        "sagemaker:CreateEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:DeleteEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities",
                        "sagemaker:AddTags",
                    ],
                    resources=[endpoint_arn, endpoint_configs],
                ),
                *source_model_statements(source, sid_prefix="Source", artifacts=False, images=(), key=False),
                iam.PolicyStatement(
                    sid="PassTheModelRole",
                    actions=["iam:PassRole"],
                    resources=[self.model_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="DataKeyForVolumesAndCapture",
                    actions=["kms:CreateGrant"],
                    resources=[data_key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(sid="DescribeDataKey", actions=["kms:DescribeKey"], resources=[data_key.key_arn]),
                iam.PolicyStatement(sid="RollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=alarms),
                *self._autoscaling_statements(config, stack),
            ],
        )

        # --- the role the source environment's deploy assumes ------------------------------------
        functions_role = role_arn(source, source.deploy_functions_role_name)
        self.deployer_role = iam.Role(
            self,
            "DeployerRole",
            role_name=config.endpoint_deployer_role_name,
            assumed_by=iam.AccountPrincipal(source.account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": functions_role}}
            ),
            description=f"{config.name_prefix}: {source.name}'s deploy sets, checks and smoke-tests this endpoint",
            max_session_duration=cdk.Duration.hours(1),
        )
        stack_arn = stack.format_arn(service="cloudformation", resource="stack", resource_name=f"{stack.stack_name}/*")
        iam.ManagedPolicy(
            self,
            "DeployerPolicy",
            roles=[self.deployer_role],
            description=f"{config.name_prefix}: set the endpoint stack's parameters, verify, smoke-test, clean up",
            statements=[
                iam.PolicyStatement(
                    sid="UpdateThisStackOnly",
                    actions=[
                        "cloudformation:UpdateStack",
                        "cloudformation:DescribeStacks",
                        "cloudformation:DescribeStackEvents",
                    ],
                    resources=[stack_arn],
                ),
                iam.PolicyStatement(
                    sid="AsTheCloudFormationRole",
                    actions=["iam:PassRole"],
                    resources=[self.cloudformation_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="VerifyAndSmokeTest",
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"],
                    resources=[endpoint_arn],
                ),
                iam.PolicyStatement(
                    sid="CleanUpRetainedVersions",
                    actions=[
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:DescribeModel",
                        "sagemaker:DeleteModel",
                    ],
                    resources=[models, endpoint_configs],
                ),
                iam.PolicyStatement(
                    sid="FindRetainedVersions",
                    actions=["sagemaker:ListEndpointConfigs", "sagemaker:ListModels"],
                    resources=["*"],
                ),
            ],
        )

    def _autoscaling_statements(self, config: EnvironmentConfig, stack: cdk.Stack) -> list[iam.PolicyStatement]:
        """What registering the variant with Application Auto Scaling needs of its caller (AAS's SageMaker guide)."""
        endpoint = config.endpoint
        if endpoint is None or endpoint.kind != EndpointKind.INSTANCE or not endpoint.autoscaling.enabled:
            return []
        return [
            iam.PolicyStatement(
                # Scalable targets have generated ids; the conditions keep this to SageMaker variants' counts.
                sid="AutoscaleTheVariant",
                actions=[
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DeleteScalingPolicy",
                ],
                resources=[
                    stack.format_arn(service="application-autoscaling", resource="scalable-target", resource_name="*")
                ],
                conditions={
                    "StringEquals": {
                        "application-autoscaling:service-namespace": "sagemaker",
                        "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
                    }
                },
            ),
            iam.PolicyStatement(
                sid="DescribeAutoscaling",
                actions=[
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="TargetTrackingAlarms",
                actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
                resources=[
                    stack.format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name=f"TargetTracking-endpoint/{config.endpoint_name}/*",
                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                sid="AutoscalingServiceLinkedRole",
                actions=["iam:CreateServiceLinkedRole"],
                resources=[f"arn:{config.partition}:iam::{config.account}:role/{AUTOSCALING_ROLE}"],
                conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
            ),
        ]
