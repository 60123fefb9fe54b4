"""Private networking for SageMaker: isolated subnets, VPC endpoints, flow logs."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import CreatedNetwork, EnvironmentConfig, ImportedNetwork
from stacks.platform_stack import encrypted_log_group

# Interface endpoints that SageMaker jobs, endpoints and Studio need when the subnets
# have no route to the internet. S3 is a gateway endpoint (no hourly cost).
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "SageMakerStudio": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_STUDIO,
    "SageMakerNotebook": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_NOTEBOOK,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "CloudWatchLogs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "CloudWatchMetrics": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
}


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
        ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(log_group),
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
            ec2.GatewayVpcEndpoint(
                self, "S3Endpoint", vpc=self.vpc, service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.subnets]
            )
            for name, service in INTERFACE_ENDPOINTS.items():
                ec2.InterfaceVpcEndpoint(
                    self,
                    f"{name}Endpoint",
                    vpc=self.vpc,
                    service=service,
                    private_dns_enabled=True,
                    subnets=self.subnets,
                    security_groups=[self.endpoint_security_group],
                    open=False,
                )
