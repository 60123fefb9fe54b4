"""The SageMaker domain: VPC-only, IAM auth, the data key, idle shutdown, user profiles from config."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.config import EnvironmentConfig, Persona

NFS = 2049
# Studio's apps talk to each other (JupyterServer/KernelGateway, Code Editor) on these ports.
APP_PORTS = ec2.Port.tcp_range(8192, 65535)


class StudioDomain(Construct):
    """The domain, its security group and its user profiles.

    Attributes:
        domain: the CfnDomain (``attr_domain_id``, ``attr_domain_arn``).
        security_group: admits traffic only from itself; no ingress from outside the VPC.
        user_profiles: user name -> profile.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        key: kms.IKey,
        sharing_s3_uri: str,
        roles: dict[Persona, iam.IRole],
    ) -> None:
        super().__init__(scope, id_)
        studio = config.studio
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"{config.name_prefix} Studio apps: traffic between apps and to AWS endpoints only",
            allow_all_outbound=False,
        )
        sg = self.security_group
        sg.add_ingress_rule(sg, ec2.Port.tcp(NFS), "home EFS between the domain's apps")
        sg.add_ingress_rule(sg, APP_PORTS, "between the domain's apps")
        sg.add_egress_rule(sg, ec2.Port.tcp(NFS), "home EFS")
        sg.add_egress_rule(sg, APP_PORTS, "between the domain's apps")
        # The subnets have no route out: HTTPS can reach only the VPC endpoints and S3's gateway
        # endpoint, whose prefix list id cannot be known offline at synth.
        sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC and S3 gateway endpoints")

        idle = sagemaker.CfnDomain.AppLifecycleManagementProperty(
            idle_settings=sagemaker.CfnDomain.IdleSettingsProperty(
                lifecycle_management="ENABLED",
                idle_timeout_in_minutes=studio.idle_timeout_minutes,
                min_idle_timeout_in_minutes=60,
                max_idle_timeout_in_minutes=studio.idle_timeout_minutes,
            )
        )
        default_role = roles[Persona.DATA_SCIENTIST]
        self.domain = sagemaker.CfnDomain(
            self,
            "Domain",
            domain_name=config.name_prefix,
            auth_mode="IAM",
            app_network_access_type="VpcOnly",
            vpc_id=vpc.vpc_id,
            subnet_ids=vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
            kms_key_id=key.key_arn,
            tag_propagation="ENABLED",
            default_user_settings=sagemaker.CfnDomain.UserSettingsProperty(
                execution_role=default_role.role_arn,
                security_groups=[sg.security_group_id],
                studio_web_portal="ENABLED",
                default_landing_uri="studio::",
                sharing_settings=sagemaker.CfnDomain.SharingSettingsProperty(
                    notebook_output_option="Allowed",
                    s3_output_path=sharing_s3_uri,
                    s3_kms_key_id=key.key_arn,
                ),
                jupyter_lab_app_settings=sagemaker.CfnDomain.JupyterLabAppSettingsProperty(
                    app_lifecycle_management=idle
                ),
                code_editor_app_settings=sagemaker.CfnDomain.CodeEditorAppSettingsProperty(
                    app_lifecycle_management=idle
                ),
            ),
            default_space_settings=sagemaker.CfnDomain.DefaultSpaceSettingsProperty(
                execution_role=default_role.role_arn,
                security_groups=[sg.security_group_id],
                jupyter_lab_app_settings=sagemaker.CfnDomain.JupyterLabAppSettingsProperty(
                    app_lifecycle_management=idle
                ),
            ),
            domain_settings=sagemaker.CfnDomain.DomainSettingsProperty(
                security_group_ids=[sg.security_group_id],
                # Sessions carry the user profile's name (source identity, ${sagemaker:UserProfileName}):
                # CloudTrail names the person, and persona policies limit each user to their own spaces.
                execution_role_identity_config="USER_PROFILE_NAME",
                docker_settings=sagemaker.CfnDomain.DockerSettingsProperty(enable_docker_access="DISABLED"),
            ),
        )

        self.user_profiles: dict[str, sagemaker.CfnUserProfile] = {}
        for user in studio.users:
            self.user_profiles[user.name] = sagemaker.CfnUserProfile(
                self,
                f"User-{user.name}",
                domain_id=self.domain.attr_domain_id,
                user_profile_name=user.name,
                user_settings=sagemaker.CfnUserProfile.UserSettingsProperty(
                    execution_role=roles[user.persona].role_arn,
                    security_groups=[sg.security_group_id],
                ),
                tags=[{"key": "persona", "value": user.persona.value}],
            )
