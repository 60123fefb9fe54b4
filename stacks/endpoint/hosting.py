"""The endpoint itself: model, endpoint config, endpoint, autoscaling and the alarms that roll it back.

Everything that serves a model version carries the ``HasModel`` condition and is named after that
version and the deploy that made it (``<prefix>-v<version>-<deploy id>``): SageMaker models and
endpoint configs are immutable, so each deploy creates new ones and CloudFormation replaces the old.
Replaced ones are *retained* (``UpdateReplacePolicy: Retain``): when SageMaker's guardrails roll an
update back, the endpoint serves the old config again, and CloudFormation, which reports the update
complete, would otherwise delete the config in use. The deploy deletes what no endpoint uses, once it
has checked which config the endpoint really serves.

The endpoint keeps one name and one variant name (``primary``): updates happen in place (blue/green),
deployment guardrails need the same variant name in the new config, and autoscaling, registered on
that variant, survives them.
"""

from __future__ import annotations

import math

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import ENDPOINT_VARIANT, Endpoint, EndpointKind, EnvironmentConfig, TrafficShift
from stacks.endpoint.package import DeployedPackage
from stacks.platform_stack import removal_policy

CSV_CONTENT_TYPES = ["text/csv"]
JSON_CONTENT_TYPES = ["application/json"]
# SageMaker bounds of a blue/green update (BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds).
MAX_UPDATE_SECONDS = 28_800
# Headroom for launching the green fleet and its health checks, on top of the configured waits.
PROVISIONING_SECONDS = 1_800


def served_name(config: EnvironmentConfig, package: DeployedPackage) -> str:
    """``<prefix>-v<version>-<deploy id>``: the name of a version's model and endpoint config.

    The version is the last segment of the package ARN (``.../model-package/<group>/<version>``).
    """
    version = cdk.Fn.select(2, cdk.Fn.split("/", package.model_package_arn))
    return cdk.Fn.join("-", [config.name_prefix, cdk.Fn.join("", ["v", version]), package.deploy_id])


def update_timeout_seconds(endpoint: Endpoint) -> int:
    """How long SageMaker may take for a blue/green update: every traffic step's wait, the bake, provisioning."""
    rollout = endpoint.rollout
    steps = math.ceil(100 / rollout.step_percent) if rollout.traffic_shift == TrafficShift.LINEAR else 1
    waits = 0 if rollout.traffic_shift == TrafficShift.ALL_AT_ONCE else steps * rollout.wait_minutes * 60
    return min(MAX_UPDATE_SECONDS, waits + rollout.bake_minutes * 60 + PROVISIONING_SECONDS)


class AlarmTopic(Construct):
    """Where the endpoint's alarms notify people: a topic with a key of its own.

    CloudWatch publishes alarm notifications as its service principal, which must be able to use
    the topic's key. A key that encrypts nothing but these notifications lets the key policy name
    CloudWatch without opening the data key to it.

    Attributes:
        topic: the KMS-encrypted topic (``config.endpoint_alarm_topic_name``).
    """

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, emails: list[str]) -> None:
        super().__init__(scope, id_)
        key = kms.Key(
            self,
            "Key",
            alias=f"alias/{config.name_prefix}/endpoint-alarms",
            description=f"{config.name_prefix}: the endpoint alarm topic's messages",
            enable_key_rotation=True,
            removal_policy=removal_policy(config),
            pending_window=cdk.Duration.days(config.retention.key_pending_window_days),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                # In a key policy, "*" means this key.
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=config.endpoint_alarm_topic_name,
            display_name=f"{config.endpoint_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))


class RollbackAlarms(Construct):
    """The endpoint's health, watched during every blue/green update (and at any other time).

    - any invocation answered 5xx;
    - model latency p99 above ``rollout.max_model_latency_ms`` for 2 of 3 minutes;
    - 4xx above ``rollout.max_4xx_percent`` of invocations: a new model that rejects what callers send
      (a changed schema, a missing feature) answers 4xx, not 5xx, and would otherwise pass.

    They are created with the stack, before any model: on an endpoint that does not exist yet they
    read no data and stay OK.
    """

    SUFFIXES = ("5xx", "model-latency", "4xx-rate")

    @classmethod
    def names(cls, config: EnvironmentConfig) -> list[str]:
        """The alarms' names (roles that read them are made before the alarms)."""
        return [f"{config.endpoint_name}-{suffix}" for suffix in cls.SUFFIXES]

    def __init__(
        self, scope: Construct, id_: str, *, config: EnvironmentConfig, endpoint: Endpoint, topic: sns.ITopic
    ) -> None:
        super().__init__(scope, id_)
        rollout = endpoint.rollout
        errors_name, latency_name, rejections_name = self.names(config)
        dimensions = {"EndpointName": config.endpoint_name, "VariantName": ENDPOINT_VARIANT}

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=cdk.Duration.minutes(1),
            )

        self.errors = cloudwatch.Alarm(
            self,
            "Invocation5xx",
            alarm_name=errors_name,
            alarm_description=f"{config.endpoint_name}: an invocation answered 5xx (rolls a blue/green update back)",
            metric=metric("Invocation5XXErrors", "Sum"),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency = cloudwatch.Alarm(
            self,
            "ModelLatency",
            alarm_name=latency_name,
            alarm_description=(
                f"{config.endpoint_name}: model latency p99 above {rollout.max_model_latency_ms} ms "
                "for 2 of 3 minutes (rolls a blue/green update back)"
            ),
            # ModelLatency is reported in microseconds.
            metric=metric("ModelLatency", "p99"),
            threshold=rollout.max_model_latency_ms * 1000,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.rejections = cloudwatch.Alarm(
            self,
            "Invocation4xxRate",
            alarm_name=rejections_name,
            alarm_description=(
                f"{config.endpoint_name}: more than {rollout.max_4xx_percent:g}% of invocations answered 4xx "
                "(rolls a blue/green update back)"
            ),
            metric=cloudwatch.MathExpression(
                expression="IF(invocations > 0, 100 * rejected / invocations, 0)",
                using_metrics={
                    "rejected": metric("Invocation4XXErrors", "Sum"),
                    "invocations": metric("Invocations", "Sum"),
                },
                label="4xx share of invocations (%)",
                period=cdk.Duration.minutes(1),
            ),
            threshold=rollout.max_4xx_percent,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms = [self.errors, self.latency, self.rejections]
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            alarm.add_ok_action(cloudwatch_actions.SnsAction(topic))


class Hosting(Construct):
    """The served model version: a model from the approved package, its endpoint config and the endpoint.

    Attributes:
        model_role: what the model's container runs as (reads the version's artifact, pulls its image,
            writes data capture; in the VPC).
        endpoint: the endpoint (``config.endpoint_name``), present once a deploy has set a version.
        alarms: the rollback alarms, which also notify ``alarm_topic``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        package: DeployedPackage,
        model_role: iam.IRole,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        data_key: kms.IKey,
        monitoring_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, id_)
        endpoint = config.endpoint
        assert endpoint is not None
        instance = endpoint.kind == EndpointKind.INSTANCE
        name = served_name(config, package)
        self.alarm_topic = AlarmTopic(self, "AlarmTopic", config=config, emails=endpoint.alarm_emails)
        self.alarms = RollbackAlarms(self, "Alarms", config=config, endpoint=endpoint, topic=self.alarm_topic.topic)

        subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids
        # Serverless endpoints support no VPC, no network isolation, no volume key and no data capture
        # (SageMaker's serverless exclusions): config refuses capture and monitoring with them.
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            model_name=name,
            execution_role_arn=model_role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                model_package_name=package.model_package_arn
            ),
            vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                subnets=subnets, security_group_ids=[security_group.security_group_id]
            )
            if instance
            else None,
            enable_network_isolation=True if instance else None,
        )
        if instance:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=ENDPOINT_VARIANT,
                model_name=self.model.attr_model_name,
                instance_type=endpoint.instance_type,
                initial_instance_count=endpoint.autoscaling.min_instances,
                initial_variant_weight=1.0,
            )
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=ENDPOINT_VARIANT,
                model_name=self.model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=endpoint.serverless.memory_mb,
                    max_concurrency=endpoint.serverless.max_concurrency,
                ),
            )
        capture = endpoint.data_capture
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            endpoint_config_name=name,
            production_variants=[variant],
            kms_key_id=data_key.key_arn if instance else None,
            data_capture_config=sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=capture.sampling_percentage,
                destination_s3_uri=monitoring_bucket.s3_url_for_object(config.capture_prefix),
                kms_key_id=data_key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
                capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    csv_content_types=CSV_CONTENT_TYPES, json_content_types=JSON_CONTENT_TYPES
                ),
            )
            if capture.enabled
            else None,
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=config.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            # The autoscaled instance count survives an update (the new fleet starts at today's size).
            retain_all_variant_properties=True if instance else None,
            deployment_config=self._deployment(endpoint) if instance else None,
        )
        for replaced in (self.model, self.endpoint_config):
            replaced.cfn_options.update_replace_policy = cdk.CfnDeletionPolicy.RETAIN
            # cfn-lint's W3011 wants DeletionPolicy Retain beside it; deleting the stack must delete them, while
            # replacing them must not (the endpoint may still serve the replaced config after a rollback).
            replaced.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3011"]}})
        served: list[cdk.CfnResource] = [self.model, self.endpoint_config, self.endpoint]
        if instance and endpoint.autoscaling.enabled:
            served.extend(self._autoscaling(config, endpoint))
        # Only what serves a version waits for one; the alarms exist from the start.
        for resource in served:
            resource.cfn_options.condition = package.has_model

        stack = cdk.Stack.of(self)
        outputs = [
            ("EndpointName", self.endpoint.attr_endpoint_name),
            ("EndpointConfigName", self.endpoint_config.attr_endpoint_config_name),
            ("ModelName", self.model.attr_model_name),
            ("ServedModelPackageArn", package.model_package_arn),
        ]
        if package.statistics_uri:
            outputs += [
                ("ServedDataStatisticsUri", package.statistics_uri),
                ("ServedDataConstraintsUri", package.constraints_uri),
                ("ServedEvaluationUri", package.evaluation_uri),
            ]
        for output, value in outputs:
            cdk.CfnOutput(stack, output, value=value, condition=package.has_model)

    def _deployment(self, endpoint: Endpoint) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
        rollout = endpoint.rollout
        step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=rollout.step_percent)
        shift = rollout.traffic_shift
        routing = sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
            type=shift.value.upper(),
            canary_size=step if shift == TrafficShift.CANARY else None,
            linear_step_size=step if shift == TrafficShift.LINEAR else None,
            wait_interval_in_seconds=None if shift == TrafficShift.ALL_AT_ONCE else rollout.wait_minutes * 60,
        )
        return sagemaker.CfnEndpoint.DeploymentConfigProperty(
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=routing,
                termination_wait_in_seconds=rollout.bake_minutes * 60,
                maximum_execution_timeout_in_seconds=update_timeout_seconds(endpoint),
            ),
            auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[
                    sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name) for alarm in self.alarms.alarms
                ]
            ),
        )

    def _autoscaling(self, config: EnvironmentConfig, endpoint: Endpoint) -> list[cdk.CfnResource]:
        scaling = endpoint.autoscaling
        # Registered on the variant, not on a config: a model update leaves it in place (SageMaker allows
        # model changes on an autoscaled variant; instance-type changes need it deregistered first).
        target = appscaling.CfnScalableTarget(
            self,
            "ScalableTarget",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=cdk.Fn.join("/", ["endpoint", self.endpoint.attr_endpoint_name, "variant", ENDPOINT_VARIANT]),
            min_capacity=scaling.min_instances,
            max_capacity=scaling.max_instances,
        )
        policy = appscaling.CfnScalingPolicy(
            self,
            "InvocationsPerInstance",
            policy_name=f"{config.endpoint_name}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(scaling.invocations_per_instance),
                predefined_metric_specification=appscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                ),
                scale_in_cooldown=scaling.scale_in_cooldown_seconds,
                scale_out_cooldown=scaling.scale_out_cooldown_seconds,
            ),
        )
        return [target, policy]
