"""Private networking for SageMaker: isolated subnets, VPC endpoints, flow logs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import CreatedNetwork, EnvironmentConfig, ImportedNetwork
from stacks.platform_stack import encrypted_log_group
from stacks.sagemaker_access import service_principal

# Interface endpoints that SageMaker jobs, endpoints and Studio need when the subnets
# have no route to the internet. S3 is a gateway endpoint (no hourly cost).
# Config name -> (construct id, service). The ids are the resources' paths: keep them stable.
INTERFACE_ENDPOINTS: dict[str, tuple[str, ec2.InterfaceVpcEndpointAwsService]] = {
    "sagemaker_api": ("SageMakerApi", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API),
    "sagemaker_runtime": ("SageMakerRuntime", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME),
    "sagemaker_studio": ("SageMakerStudio", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_STUDIO),
    "sagemaker_notebook": ("SageMakerNotebook", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_NOTEBOOK),
    "ecr_api": ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
    "ecr_docker": ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
    "logs": ("CloudWatchLogs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
    "monitoring": ("CloudWatchMetrics", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING),
    "sts": ("Sts", ec2.InterfaceVpcEndpointAwsService.STS),
    "kms": ("Kms", ec2.InterfaceVpcEndpointAwsService.KMS),
    "ssm": ("Ssm", ec2.InterfaceVpcEndpointAwsService.SSM),
}

# The browser reaches Studio through these with a presigned-URL session, not a SigV4-signed request:
# no IAM principal exists to condition on, so their policy admits what reaches them (from the VPC only,
# through the endpoint security group); access is decided by the presigned URL and the domain.
BROWSER_ENDPOINTS = frozenset({"SageMakerStudio", "SageMakerNotebook"})


class PrivateNetwork(Construct):
    """The VPC SageMaker runs in: created here, or imported by explicit ids.

    Attributes:
        vpc: the VPC.
        subnets: the private subnets SageMaker jobs, endpoints and Studio use.
        endpoint_security_group: admits HTTPS to the interface endpoints from the VPC only.
    """

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, logs_key: kms.IKey) -> None:
        super().__init__(scope, id_)
        net = config.networking
        self.vpc: ec2.IVpc
        if isinstance(net, CreatedNetwork):
            self.vpc = ec2.Vpc(
                self,
                "Vpc",
                ip_addresses=ec2.IpAddresses.cidr(net.cidr),
                availability_zones=list(net.availability_zones),
                nat_gateways=0,
                subnet_configuration=[
                    ec2.SubnetConfiguration(
                        name="private",
                        subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                        cidr_mask=net.subnet_cidr_mask,
                    )
                ],
                enable_dns_hostnames=True,
                enable_dns_support=True,
                restrict_default_security_group=True,
            )
            create_endpoints = True
        else:
            assert isinstance(net, ImportedNetwork)
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=net.vpc_id,
                vpc_cidr_block=net.cidr,
                availability_zones=list(net.availability_zones),
                isolated_subnet_ids=list(net.private_subnet_ids),
                isolated_subnet_route_table_ids=list(net.private_route_table_ids),
            )
            create_endpoints = net.create_endpoints
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        log_group = encrypted_log_group(
            self, "FlowLogs", config=config, key=logs_key, retention_days=net.flow_log_retention_days
        )
        stack = cdk.Stack.of(self)
        flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=service_principal(
                self,
                "vpc-flow-logs.amazonaws.com",
                source_arn=stack.format_arn(service="ec2", resource="vpc-flow-log", resource_name="*"),
            ),
            description=f"{config.name_prefix}: VPC flow logs into their log group",
        )
        iam.ManagedPolicy(
            self,
            "FlowLogPolicy",
            roles=[flow_log_role],
            description=f"{config.name_prefix}: VPC flow logs write their log group only",
            statements=[
                iam.PolicyStatement(
                    sid="WriteTheFlowLogGroup",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[log_group.log_group_arn],
                )
            ],
        )
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group, flow_log_role.without_policy_updates()),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from inside the VPC to the AWS service endpoints",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(net.cidr), ec2.Port.tcp(443), "HTTPS from inside the VPC"
        )
        if create_endpoints:
            s3_endpoint = ec2.GatewayVpcEndpoint(
                self, "S3Endpoint", vpc=self.vpc, service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnets]
            )
            for statement in _s3_endpoint_policy(config):
                s3_endpoint.add_to_policy(statement)
            # Each interface endpoint is billed per zone it sits in: config may keep them to fewer zones.
            endpoint_subnets = self.subnets
            if net.endpoint_zones is not None:
                chosen = self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnets[
                    : net.endpoint_zones
                ]
                endpoint_subnets = ec2.SubnetSelection(subnets=chosen)
            for key in net.interface_endpoints:
                name, service = INTERFACE_ENDPOINTS[key]
                endpoint = ec2.InterfaceVpcEndpoint(
                    self,
                    f"{name}Endpoint",
                    vpc=self.vpc,
                    service=service,
                    private_dns_enabled=True,
                    subnets=endpoint_subnets,
                    security_groups=[self.endpoint_security_group],
                    open=False,
                )
                endpoint.add_to_policy(_interface_endpoint_policy(config, browser=name in BROWSER_ENDPOINTS))


def _s3_endpoint_policy(config: EnvironmentConfig) -> list[iam.PolicyStatement]:
    """From this VPC, S3 serves this environment's buckets to this account's principals, and ECR's layers.

    Outside credentials, and buckets of other environments or accounts, are refused at the endpoint:
    code in Studio or in a job cannot copy data out through it.
    """
    buckets = [config.bucket_name(purpose) for purpose in ("data", "artifacts", "monitoring")]
    return [
        iam.PolicyStatement(
            sid="ThisEnvironmentsBuckets",
            principals=[iam.AnyPrincipal()],
            actions=["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation"],
            resources=[
                r
                for name in buckets
                for r in (f"arn:{config.partition}:s3:::{name}", f"arn:{config.partition}:s3:::{name}/*")
            ],
            conditions={
                "StringEquals": {"aws:PrincipalAccount": config.account, "aws:ResourceAccount": config.account}
            },
        ),
        iam.PolicyStatement(
            # ECR keeps image layers in its own bucket: pulling an image in these subnets reads it through S3.
            sid="EcrImageLayers",
            principals=[iam.AnyPrincipal()],
            actions=["s3:GetObject"],
            resources=[f"arn:{config.partition}:s3:::prod-{config.region}-starport-layer-bucket/*"],
            conditions={"StringEquals": {"aws:PrincipalAccount": config.account}},
        ),
    ]


def _interface_endpoint_policy(config: EnvironmentConfig, *, browser: bool) -> iam.PolicyStatement:
    """This account's principals only (not outside credentials), on this account's resources."""
    if browser:
        return iam.PolicyStatement(
            sid="StudioBrowserSessions", principals=[iam.AnyPrincipal()], actions=["*"], resources=["*"]
        )
    return iam.PolicyStatement(
        sid="ThisAccountsPrincipals",
        principals=[iam.AnyPrincipal()],
        actions=["*"],
        resources=["*"],
        conditions={"StringEquals": {"aws:PrincipalAccount": config.account}},
    )
