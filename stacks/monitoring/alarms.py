"""The endpoint's monitoring alarms and its CloudWatch dashboard.

Alarms watch the violation counts the results function publishes for either engine, in the
platform's namespace with the dimensions ``Endpoint`` and ``MonitoringSchedule`` (Maximum over
one schedule period, missing data not breaching: no run, no verdict):

- ``<prefix>-monitoring-drift``: ``baseline_drift_violations`` >= 1 (retrains);
- ``<prefix>-monitoring-data-quality``: ``data_quality_violations - baseline_drift_violations`` >= 1,
  the other data-quality checks (missing or extra columns, types, completeness, categories): an
  integration fault more often than a model's, so it notifies and does not retrain;
- ``<prefix>-monitoring-model-quality``: ``model_quality_violations`` >= 1 (retrains), where model
  quality is checked.

Their state changes go to EventBridge, where the source environment's retrain function receives
them (it decides, within its cooldown, and notifies its own topic); the alarms also notify the
endpoint's alarm topic (``endpoint.alarm_emails``), where the people who watch this endpoint hear of
them. Each alarm's description is a JSON document, the monitoring context the retrain function
records (``lambdas/model_retrain/events.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import (
    ENDPOINT_VARIANT,
    MODEL_MONITOR_DATA_NAMESPACE,
    MODEL_MONITOR_MODEL_NAMESPACE,
    MONITORING_NAMESPACE,
    EnvironmentConfig,
    MonitoringCheck,
    MonitoringEngine,
)
from stacks.endpoint.package import DeployedPackage
from stacks.monitoring.events import ALARMS, alarm_kinds

# The model-quality metrics judged per problem type (ml_code.monitor's MONITORED).
QUALITY_METRICS = {
    "regression": ("rmse", "mae"),
    "binary": ("accuracy", "f1"),
    "multiclass": ("accuracy", "weighted_f1"),
}
# Powertools metrics of the platform's functions (namespace, service dimension).
PLATFORM_FUNCTIONS_NAMESPACE = "AWS-MLOps"
RETRAIN_ACTIONS = ("started", "skipped_cooldown", "start_failed", "retrain_failed", "notified", "monitoring_failed")


class MonitoringAlarms(Construct):
    """The alarms of one endpoint's monitoring, and its dashboard.

    Attributes:
        alarms: by kind (``drift``, ``data-quality``, ``model-quality``).
        dashboard: ``<prefix>-monitoring``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        source: EnvironmentConfig,
        package: DeployedPackage,
        bucket_name: str,
        topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, id_)
        monitoring = config.monitoring
        assert monitoring is not None
        period = cdk.Duration.hours(monitoring.period_hours)

        def count(name: str, check: MonitoringCheck) -> cw.Metric:
            return cw.Metric(
                namespace=MONITORING_NAMESPACE,
                metric_name=name,
                dimensions_map={
                    "Endpoint": config.endpoint_name,
                    "MonitoringSchedule": config.monitoring_schedule_name(check),
                },
                statistic="Maximum",
                period=period,
                label=name,
            )

        def context(kind: str) -> str:
            check, retrains = ALARMS[kind]
            return json.dumps(
                {
                    "endpoint": config.endpoint_name,
                    "check": check,
                    "model_package": package.model_package_arn,
                    "reports": f"s3://{bucket_name}/{config.monitoring_report_prefix}/"
                    f"{config.monitoring_schedule_name(check)}/",
                    "action": "retrain" if retrains and monitoring.retrain else "notify",
                },
                separators=(",", ":"),
            )

        metrics: dict[str, cw.IMetric] = {
            "drift": count("baseline_drift_violations", "data-quality"),
            "data-quality": cw.MathExpression(
                expression="all - drift",
                using_metrics={
                    "all": count("data_quality_violations", "data-quality"),
                    "drift": count("baseline_drift_violations", "data-quality"),
                },
                period=period,
                label="other data-quality violations",
            ),
            "model-quality": count("model_quality_violations", "model-quality"),
        }
        self.alarms: dict[str, cw.Alarm] = {}
        for kind in alarm_kinds(config):
            self.alarms[kind] = cw.Alarm(
                self,
                kind.title().replace("-", ""),
                alarm_name=config.monitoring_alarm_name(kind),
                alarm_description=context(kind),
                metric=metrics[kind],
                threshold=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            if topic is not None:
                self.alarms[kind].add_alarm_action(actions.SnsAction(topic))
                self.alarms[kind].add_ok_action(actions.SnsAction(topic))
        self.dashboard = _dashboard(self, config=config, source=source, period=period, alarms=self.alarms, count=count)


def _dashboard(
    scope: Construct,
    *,
    config: EnvironmentConfig,
    source: EnvironmentConfig,
    period: cdk.Duration,
    alarms: dict[str, cw.Alarm],
    count: Callable[[str, MonitoringCheck], cw.Metric],
) -> cw.Dashboard:
    monitoring = config.monitoring
    assert monitoring is not None and source.model_build is not None
    endpoint = {"EndpointName": config.endpoint_name, "VariantName": ENDPOINT_VARIANT}

    def sagemaker(name: str, statistic: str, label: str) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map=endpoint,
            statistic=statistic,
            period=cdk.Duration.minutes(5),
            label=label,
        )

    platform = monitoring.engine is MonitoringEngine.PLATFORM
    data_namespace = MONITORING_NAMESPACE if platform else MODEL_MONITOR_DATA_NAMESPACE
    model_namespace = MONITORING_NAMESPACE if platform else MODEL_MONITOR_MODEL_NAMESPACE
    # Every feature's drift without a feature list at synth: a SEARCH over the engine's namespace.
    drift = cw.MathExpression(
        expression=(
            f'SEARCH(\'Namespace="{data_namespace}" "{config.endpoint_name}" feature_baseline_drift\', '
            f"'Maximum', {int(period.to_seconds())})"
        ),
        label="",
        period=period,
    )
    problem = source.model_build.pipeline.problem_type
    quality = [
        cw.Metric(
            namespace=model_namespace,
            metric_name=name,
            dimensions_map={
                "Endpoint": config.endpoint_name,
                "MonitoringSchedule": config.monitoring_schedule_name("model-quality"),
            },
            statistic="Maximum",
            period=period,
            label=name,
        )
        for name in QUALITY_METRICS[problem]
    ]
    # The pipeline runs and retrains happen in the source environment (another account, possibly:
    # those widgets then need CloudWatch cross-account observability to show anything).
    account, region = source.account, source.region
    runs = [
        cw.Metric(
            namespace="AWS/Sagemaker/ModelBuildingPipeline",
            metric_name=name,
            dimensions_map={"PipelineName": source.build_pipeline_name},
            statistic="Sum",
            period=cdk.Duration.hours(1),
            label=name,
            account=account,
            region=region,
        )
        for name in ("ExecutionStarted", "ExecutionSucceeded", "ExecutionFailed")
    ]
    retrains = [
        cw.Metric(
            namespace=PLATFORM_FUNCTIONS_NAMESPACE,
            metric_name=f"Retrain_{action}",
            dimensions_map={"service": "model-retrain"},
            statistic="Sum",
            period=cdk.Duration.hours(1),
            label=action,
            account=account,
            region=region,
        )
        for action in RETRAIN_ACTIONS
    ]
    violations = [
        count("baseline_drift_violations", "data-quality"),
        count("data_quality_violations", "data-quality"),
    ]
    if "model-quality" in monitoring.checks:
        violations.append(count("model_quality_violations", "model-quality"))
    failed = [count("failed_runs", check) for check in monitoring.checks]
    dashboard = cw.Dashboard(scope, "Dashboard", dashboard_name=config.monitoring_dashboard_name)
    dashboard.add_widgets(
        cw.TextWidget(
            markdown=(
                f"# {config.endpoint_name}\nMonitoring engine **{monitoring.engine.value}**, {monitoring.schedule}; "
                f"models from **{source.name}**'s build ({source.build_pipeline_name}). Reports: "
                f"`{config.monitoring_report_prefix}/` in the monitoring bucket."
            ),
            width=24,
            height=2,
        )
    )
    dashboard.add_widgets(
        cw.GraphWidget(title="Invocations", left=[sagemaker("Invocations", "Sum", "invocations")], width=8),
        cw.GraphWidget(
            title="Errors",
            left=[sagemaker("Invocation4XXErrors", "Sum", "4xx"), sagemaker("Invocation5XXErrors", "Sum", "5xx")],
            width=8,
        ),
        cw.GraphWidget(
            title="Model latency (microseconds)",
            left=[sagemaker("ModelLatency", "p50", "p50"), sagemaker("ModelLatency", "p99", "p99")],
            width=8,
        ),
    )
    dashboard.add_widgets(
        cw.GraphWidget(title="Drift per feature (L-infinity distance)", left=[drift], width=12),
        cw.GraphWidget(title="Violations per run", left=violations, right=failed, width=12),
    )
    row: list[cw.IWidget] = [cw.AlarmStatusWidget(title="Monitoring alarms", alarms=list(alarms.values()), width=6)]
    if "model-quality" in monitoring.checks:
        row.insert(0, cw.GraphWidget(title=f"Model quality ({problem})", left=quality, width=6))
    row += [
        cw.GraphWidget(title=f"Pipeline runs ({source.build_pipeline_name})", left=runs, width=6),
        cw.GraphWidget(title="Retrain decisions", left=retrains, width=6),
    ]
    dashboard.add_widgets(*row)
    return dashboard
