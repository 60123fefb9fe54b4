"""Engine ``model_monitor``: SageMaker Model Monitor's job definitions and schedules for the endpoint.

- Data quality: Model Monitor's analyzer over the captured data, against the version's copied
  ``statistics.json`` and ``constraints.json``.
- Model quality (where ``monitoring.model_quality``): the captured predictions of the window that
  ended ``ground_truth_delay_hours`` ago (``StartTimeOffset``/``EndTimeOffset``), merged with the
  ground truth under ``s3://<monitoring>/<ground truth prefix>/``, against
  ``model_quality_constraints.json`` (made from the registered evaluation at deploy).

Both run in the private subnets with the endpoint's security group, network isolation and
encryption between instances, the data key on volumes and outputs, as ``<prefix>-monitoring-job``.
Model Monitor files each report under ``<output>/<endpoint>/<schedule>/yyyy/mm/dd/hh/``: the output
given is the parent of ``monitoring_report_prefix``, so its reports land where the platform
engine's do. The job definitions read the baseline the deploy keeps current
(``baselines/<endpoint>/current/``), so a deploy changes none of them: it needs no more than the
custom resource's run. Job definitions cannot be updated, only replaced, and CloudFormation creates
a replacement before it deletes the old one: their names carry a digest of their settings, new with
each change of them. They exist once a model is served (``HasModel``): a schedule needs its endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnResource
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

from stacks.config import EnvironmentConfig
from stacks.monitoring.baseline import MonitoringBaseline
from stacks.monitoring.images import model_monitor_image

ENDPOINT_INPUT = "/opt/ml/processing/input/endpoint"
OUTPUT = "/opt/ml/processing/output"
PROBLEM_TYPES = {"regression": "Regression", "binary": "BinaryClassification", "multiclass": "MulticlassClassification"}
# Model Monitor runs an hourly execution in one hour, and a model-quality one (merge, then analysis) in half.
DATA_QUALITY_MAX_RUNTIME = 3600
MODEL_QUALITY_MAX_RUNTIME = 1800


def job_definition_name(config: EnvironmentConfig, check: str, digest: str) -> str:
    """``<prefix>-dq-<digest>`` (``-mq-``): a job definition's name, new with each change of its settings."""
    return f"{config.name_prefix}-{'dq' if check == 'data-quality' else 'mq'}-{digest[:8]}"


def schedule_expression(schedule: str) -> str:
    """Model Monitor's cron: on the hour, or at midnight UTC."""
    return "cron(0 * ? * * *)" if schedule == "hourly" else "cron(0 0 ? * * *)"


class ModelMonitorSchedules(Construct):
    """Model Monitor's job definitions and monitoring schedules for one endpoint.

    Attributes:
        schedules: by check (``data-quality``, ``model-quality``).
        definition_names: the job definitions' names, by check.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        source: EnvironmentConfig,
        baseline: MonitoringBaseline,
        settings_digest: str,
        role: iam.IRole,
        data_key: kms.IKey,
        subnet_ids: Sequence[str],
        security_group: ec2.ISecurityGroup,
        bucket_name: str,
        endpoint: IConstruct | None = None,
    ) -> None:
        super().__init__(scope, id_)
        monitoring = config.monitoring
        assert monitoring is not None and source.model_build is not None
        image = model_monitor_image(config.region)
        current = baseline.current_uri
        reports = config.monitoring_report_prefix
        if not reports.endswith(f"/{config.endpoint_name}"):
            raise ValueError(f"{reports}: Model Monitor files reports under <output>/<endpoint>/: expected that layout")
        output_uri = f"s3://{bucket_name}/{reports.removesuffix('/' + config.endpoint_name)}"

        def common(kind: Any) -> dict[str, Any]:
            # The same settings for both job definitions, each in its own resource type's classes.
            return {
                "job_resources": kind.MonitoringResourcesProperty(
                    cluster_config=kind.ClusterConfigProperty(
                        instance_count=1,
                        instance_type=monitoring.instance_type,
                        volume_size_in_gb=monitoring.volume_size_gb,
                        volume_kms_key_id=data_key.key_arn,
                    )
                ),
                "network_config": kind.NetworkConfigProperty(
                    enable_network_isolation=True,
                    enable_inter_container_traffic_encryption=True,
                    vpc_config=kind.VpcConfigProperty(
                        security_group_ids=[security_group.security_group_id], subnets=list(subnet_ids)
                    ),
                ),
                "role_arn": role.role_arn,
                "endpoint_name": config.endpoint_name,
            }

        def output(kind: Any) -> Any:
            return kind.MonitoringOutputConfigProperty(
                kms_key_id=data_key.key_arn,
                monitoring_outputs=[
                    kind.MonitoringOutputProperty(
                        s3_output=kind.S3OutputProperty(local_path=OUTPUT, s3_uri=output_uri, s3_upload_mode="EndOfJob")
                    )
                ],
            )

        dq = sagemaker.CfnDataQualityJobDefinition
        data_quality = dq(
            self,
            "DataQualityJob",
            job_definition_name=job_definition_name(config, "data-quality", settings_digest),
            **common(dq),
            data_quality_app_specification=dq.DataQualityAppSpecificationProperty(
                image_uri=image, environment={"publish_cloudwatch_metrics": "Enabled"}
            ),
            data_quality_baseline_config=dq.DataQualityBaselineConfigProperty(
                constraints_resource=dq.ConstraintsResourceProperty(s3_uri=f"{current}constraints.json"),
                statistics_resource=dq.StatisticsResourceProperty(s3_uri=f"{current}statistics.json"),
            ),
            data_quality_job_input=dq.DataQualityJobInputProperty(
                endpoint_input=dq.EndpointInputProperty(
                    endpoint_name=config.endpoint_name,
                    local_path=ENDPOINT_INPUT,
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                )
            ),
            data_quality_job_output_config=output(dq),
            stopping_condition=dq.StoppingConditionProperty(max_runtime_in_seconds=DATA_QUALITY_MAX_RUNTIME),
        )
        definitions: dict[str, tuple[CfnResource, str]] = {"data-quality": (data_quality, "DataQuality")}
        if "model-quality" in monitoring.checks:
            period, delay = monitoring.period_hours, monitoring.ground_truth_delay_hours
            mq = sagemaker.CfnModelQualityJobDefinition
            model_quality = mq(
                self,
                "ModelQualityJob",
                job_definition_name=job_definition_name(config, "model-quality", settings_digest),
                **common(mq),
                model_quality_app_specification=mq.ModelQualityAppSpecificationProperty(
                    image_uri=image, problem_type=PROBLEM_TYPES[source.model_build.pipeline.problem_type]
                ),
                model_quality_baseline_config=mq.ModelQualityBaselineConfigProperty(
                    constraints_resource=mq.ConstraintsResourceProperty(
                        s3_uri=f"{current}model_quality_constraints.json"
                    )
                ),
                model_quality_job_input=mq.ModelQualityJobInputProperty(
                    endpoint_input=mq.EndpointInputProperty(
                        endpoint_name=config.endpoint_name,
                        local_path=ENDPOINT_INPUT,
                        # The server answers one prediction per row, first column (ml_code.serving).
                        inference_attribute="0",
                        start_time_offset=f"-PT{delay + period}H",
                        end_time_offset=f"-PT{delay}H",
                        s3_input_mode="File",
                        s3_data_distribution_type="FullyReplicated",
                    ),
                    ground_truth_s3_input=mq.MonitoringGroundTruthS3InputProperty(
                        s3_uri=f"s3://{bucket_name}/{config.ground_truth_prefix}"
                    ),
                ),
                model_quality_job_output_config=output(mq),
                stopping_condition=mq.StoppingConditionProperty(max_runtime_in_seconds=MODEL_QUALITY_MAX_RUNTIME),
            )
            definitions["model-quality"] = (model_quality, "ModelQuality")
        self.definition_names = {
            check: definition.job_definition_name  # type: ignore[attr-defined]
            for check, (definition, _) in definitions.items()
        }
        self.schedules: dict[str, sagemaker.CfnMonitoringSchedule] = {}
        for check, (definition, kind) in definitions.items():
            name = definition.job_definition_name  # type: ignore[attr-defined]
            schedule = sagemaker.CfnMonitoringSchedule(
                self,
                kind + "Schedule",
                monitoring_schedule_name=config.monitoring_schedule_name(check),  # type: ignore[arg-type]
                endpoint_name=config.endpoint_name,
                monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
                    monitoring_job_definition_name=name,
                    monitoring_type=kind,
                    schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(
                        schedule_expression=schedule_expression(monitoring.schedule)
                    ),
                ),
            )
            # The schedule names its definition (no reference CloudFormation could follow): create that first.
            schedule.node.add_dependency(definition)
            if endpoint is not None:
                # A schedule needs its endpoint (with data capture) to exist.
                schedule.node.add_dependency(endpoint)
            self.schedules[check] = schedule
