"""The custom resource that prepares each deployed version's baselines in the monitoring bucket.

See ``lambdas/monitoring_baseline/baseline.py`` for what it does and why; here: its function,
its permissions (the source environment's registry, artifacts and data key, read; this
endpoint's baseline folder, written) and its attributes, which the engines read.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.endpoint.package import DeployedPackage
from stacks.endpoint.source import source_model_statements
from stacks.functions import OwnRoleFunction


class MonitoringBaseline(Construct):
    """``Custom::MonitoringBaseline``: re-run by CloudFormation whenever a deploy changes the version.

    Attributes:
        uri: the folder of this version's copied baseline (``s3://<monitoring>/baselines/<endpoint>/v<n>-<digest>/``).
        statistics_uri, constraints_uri: the data-quality baseline there.
        quality_constraints_uri: Model Monitor's model-quality constraints there.
        image_tag: the version's image tag (training and inference images were built from it).
        suffix: ``v<version>-<digest>``, this deploy's folder.
        current_uri: the folder the monitors read (this deploy's files, and ``version.json``), fixed.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        source: EnvironmentConfig,
        package: DeployedPackage,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        bucket_name: str,
        bucket_arn: str,
    ) -> None:
        super().__init__(scope, id_)
        monitoring = config.monitoring
        assert monitoring is not None and source.model_build is not None
        self.function = OwnRoleFunction(
            self,
            "Function",
            config=config,
            package="monitoring_baseline",
            function_name=f"{config.monitoring_function_prefix}baseline",
            description=f"Copies the deployed version's baselines for {config.endpoint_name}'s monitoring",
            data_key=data_key,
            logs_key=logs_key,
            environment={},
            timeout=cdk.Duration.minutes(5),
            memory_mb=512,
            reserved_concurrency=1,
        )
        self.function.add_statements(
            # The source's registry, the version's files and its data key (the images are not read here).
            *source_model_statements(source, sid_prefix="Source", images=()),
            iam.PolicyStatement(
                sid="WriteThisEndpointsBaselines",
                actions=["s3:PutObject"],
                resources=[f"{bucket_arn}/{config.monitoring_baseline_prefix}/*"],
            ),
        )
        resource = cdk.CustomResource(
            self,
            "Resource",
            service_token=self.function.function.function_arn,
            resource_type="Custom::MonitoringBaseline",
            properties={
                "ModelPackageArn": package.model_package_arn,
                "StatisticsUri": package.statistics_uri,
                "ConstraintsUri": package.constraints_uri,
                "EvaluationUri": package.evaluation_uri,
                "Bucket": bucket_name,
                "Prefix": config.monitoring_baseline_prefix,
                "KmsKeyArn": data_key.key_arn,
                "ProblemType": source.model_build.pipeline.problem_type,
                # repr: the shortest text that reads back as the same float (":g" would round to 6 digits).
                "MaxQualityDegradation": repr(monitoring.max_quality_degradation),
                # Only when set: unset, the deployed constraints are the registered ones, byte for byte.
                **(
                    {"DriftThreshold": repr(monitoring.drift_threshold)}
                    if monitoring.drift_threshold is not None
                    else {}
                ),
            },
        )
        # It runs only once its permissions are in place.
        resource.node.add_dependency(self.function.policy)
        self.uri = resource.get_att_string("BaselineUri")
        self.statistics_uri = resource.get_att_string("StatisticsUri")
        self.constraints_uri = resource.get_att_string("ConstraintsUri")
        self.quality_constraints_uri = resource.get_att_string("ModelQualityConstraintsUri")
        self.image_tag = resource.get_att_string("ImageTag")
        self.suffix = resource.get_att_string("Suffix")
        # What the served version is judged against (the registered constraints, with drift_threshold if set).
        cdk.CfnOutput(
            cdk.Stack.of(self), "MonitoringConstraintsUri", value=self.constraints_uri, condition=package.has_model
        )
        # Where the monitors read the served version's baseline: the deploy keeps it current.
        self.current_uri = f"s3://{bucket_name}/{config.monitoring_baseline_prefix}/current/"
