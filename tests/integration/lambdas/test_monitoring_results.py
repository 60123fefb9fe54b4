"""The monitoring results function through boto3 against a moto server on 127.0.0.1: SageMaker, S3, CloudWatch.

Events have the shape EventBridge delivers for "SageMaker Processing Job State Change": the job's
description (DescribeProcessingJob's fields, times as epoch milliseconds). The platform engine's jobs
are created in moto as the launcher creates them; Model Monitor's executions (which moto cannot run)
are events naming their schedule. The metrics are read back from moto's CloudWatch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from monitoring_results import handler
from monitoring_results.events import ProcessingJobStateChange, Settings
from monitoring_results.results import Results

from tests.integration.conftest import REGION, aws_client
from tests.integration.lambdas.conftest import LambdaContextStandIn, set_environment
from tests.integration.lambdas.conftest import processing_job_state_change as state_change

ACCOUNT = "123456789012"
PREFIX = "mlops-staging"
ENDPOINT = f"{PREFIX}-endpoint"
NAMESPACE = "AWS-MLOps/Monitoring"
HOUR = datetime(2026, 11, 23, 10, tzinfo=UTC)


def settings_for(bucket: str, engine: str = "platform", endpoint: str = ENDPOINT) -> dict[str, str]:
    """The environment stacks/monitoring/results.py gives the function."""
    return {
        "ENDPOINT_NAME": endpoint,
        "MONITORING_BUCKET": bucket,
        "REPORT_PREFIX": f"reports/{endpoint}",
        "METRICS_NAMESPACE": NAMESPACE,
        "ENGINE": engine,
        "JOB_NAME_PREFIX": f"{endpoint.removesuffix('-endpoint')}-monitor-",
        "DATA_QUALITY_SCHEDULE": f"{endpoint.removesuffix('-endpoint')}-data-quality",
        "MODEL_QUALITY_SCHEDULE": f"{endpoint.removesuffix('-endpoint')}-model-quality",
    }


@dataclass
class World:
    endpoint: str
    bucket: str
    s3: Any
    sagemaker: Any
    cloudwatch: Any
    model_endpoint: str  # unique per test: CloudWatch's datapoints live for the session

    def results(self, engine: str = "platform") -> Results:
        settings = Settings.model_validate(settings_for(self.bucket, engine, self.model_endpoint))
        return Results(settings, s3=self.s3, cloudwatch=self.cloudwatch)

    @property
    def prefix(self) -> str:
        return self.model_endpoint.removesuffix("-endpoint")

    def put_json(self, key: str, document: object) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(document).encode())

    def platform_job(self, check: str, hour: datetime = HOUR) -> dict:
        """A platform job as the launcher creates it, described back by SageMaker (moto)."""
        short = "dq" if check == "data-quality" else "mq"
        name = f"{self.prefix}-monitor-{short}-{hour.strftime('%Y%m%d%H')}"
        report = (
            f"s3://{self.bucket}/reports/{self.model_endpoint}/{self.prefix}-{check}/{hour.strftime('%Y/%m/%d/%H')}/"
        )
        self.sagemaker.create_processing_job(
            ProcessingJobName=name,
            ProcessingResources={
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
            },
            AppSpecification={"ImageUri": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev/training:sha-1"},
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.prefix}-monitoring-job",
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
            ProcessingOutputConfig={
                "Outputs": [
                    {
                        "OutputName": "report",
                        "S3Output": {
                            "S3Uri": report,
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
        )
        return self.sagemaker.describe_processing_job(ProcessingJobName=name)

    def maximum(self, metric: str, schedule: str) -> float | None:
        stats = self.cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric,
            Dimensions=[
                {"Name": "Endpoint", "Value": self.model_endpoint},
                {"Name": "MonitoringSchedule", "Value": schedule},
            ],
            StartTime=HOUR - timedelta(days=2),
            EndTime=HOUR + timedelta(hours=2),
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        return max((d["Maximum"] for d in stats), default=None)

    def timestamps(self, metric: str, schedule: str) -> list[datetime]:
        stats = self.cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric,
            Dimensions=[
                {"Name": "Endpoint", "Value": self.model_endpoint},
                {"Name": "MonitoringSchedule", "Value": schedule},
            ],
            StartTime=HOUR - timedelta(days=2),
            EndTime=HOUR + timedelta(hours=2),
            Period=3600,
            Statistics=["Maximum"],
        )["Datapoints"]
        return sorted(d["Timestamp"] for d in stats)


@pytest.fixture
def world(moto_endpoint: str) -> Iterator[World]:
    bucket = f"monitoring-{uuid.uuid4().hex[:8]}"
    s3 = aws_client("s3", moto_endpoint)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    endpoint = f"mlops-t{uuid.uuid4().hex[:6]}-endpoint"
    yield World(
        moto_endpoint,
        bucket,
        s3,
        aws_client("sagemaker", moto_endpoint),
        aws_client("cloudwatch", moto_endpoint),
        endpoint,
    )


def _parse(event: dict) -> ProcessingJobStateChange:
    return ProcessingJobStateChange.model_validate(event)


VIOLATIONS = {
    "violations": [
        {"feature_name": "length", "constraint_check_type": "baseline_drift_check", "description": "distance 0.31"},
        {"feature_name": "sex", "constraint_check_type": "baseline_drift_check", "description": "distance 0.2"},
        {"feature_name": "height", "constraint_check_type": "completeness_check", "description": "0.7 < 0.99"},
    ]
}


def test_a_platform_data_quality_run_publishes_its_counts_and_every_features_drift(world: World) -> None:
    folder = f"reports/{world.model_endpoint}/{world.prefix}-data-quality/2026/11/23/10/"
    world.put_json(f"{folder}constraint_violations.json", VIOLATIONS)
    world.put_json(
        f"{folder}metrics.json",
        {
            "feature_baseline_drift_length": 0.31,
            "feature_baseline_drift_sex": 0.2,
            "feature_baseline_drift_height": 0.0,
        },
    )
    outcome = world.results().on_job(_parse(state_change(world.platform_job("data-quality"))))
    assert outcome.action == "published" and outcome.report == f"s3://{world.bucket}/{folder}"
    schedule = f"{world.prefix}-data-quality"
    assert world.maximum("data_quality_violations", schedule) == 3
    assert world.maximum("baseline_drift_violations", schedule) == 2
    assert world.maximum("feature_baseline_drift_length", schedule) == pytest.approx(0.31)
    assert world.maximum("feature_baseline_drift_height", schedule) == 0
    # Stamped with the run's hour, whenever the event arrives.
    assert world.timestamps("baseline_drift_violations", schedule) == [HOUR]


def test_a_platform_model_quality_run_publishes_the_metrics_model_monitor_names(world: World) -> None:
    folder = f"reports/{world.model_endpoint}/{world.prefix}-model-quality/2026/11/23/10/"
    world.put_json(
        f"{folder}constraint_violations.json",
        {"violations": [{"metric_name": "rmse", "constraint_check_type": "GreaterThanThreshold", "description": "x"}]},
    )
    world.put_json(
        f"{folder}statistics.json",
        {
            "version": 0.0,
            "dataset": {"item_count": 120},
            "regression_metrics": {
                "rmse": {"value": 3.4, "standard_deviation": "NaN"},
                "mae": {"value": 2.5, "standard_deviation": "NaN"},
                "r2": {"value": 0.31, "standard_deviation": "NaN"},
            },
        },
    )
    outcome = world.results().on_job(_parse(state_change(world.platform_job("model-quality"))))
    assert outcome.action == "published"
    schedule = f"{world.prefix}-model-quality"
    assert world.maximum("model_quality_violations", schedule) == 1
    assert world.maximum("rmse", schedule) == pytest.approx(3.4) and world.maximum("r2", schedule) == pytest.approx(
        0.31
    )
    assert world.maximum("data_quality_violations", schedule) is None


def model_monitor_execution(world: World, check: str, output: str | None, created: datetime = HOUR) -> dict:
    """A Model Monitor execution of this endpoint's schedule, as its state change describes it."""
    detail: dict[str, Any] = {
        "ProcessingJobName": f"model-monitoring-{created.strftime('%Y%m%d%H%M')}-1ec3e9b0c8ba1f53ec3df6c5",
        "ProcessingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/model-monitoring-x",
        "MonitoringScheduleArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{world.prefix}-{check}",
        "CreationTime": created,
        "ExitMessage": "CompletedWithViolations: Job completed successfully with 2 violations.",
    }
    if output is not None:
        detail["ProcessingOutputConfig"] = {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {"S3Uri": output, "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"},
                }
            ]
        }
    return detail


def test_a_model_monitor_run_publishes_its_counts_and_leaves_the_values_to_model_monitor(world: World) -> None:
    folder = f"reports/{world.model_endpoint}/{world.prefix}-data-quality/2026/11/23/10"
    world.put_json(f"{folder}/constraint_violations.json", VIOLATIONS)
    world.put_json(f"{folder}/metrics.json", {"feature_baseline_drift_length": 0.31})  # not Model Monitor's file
    detail = model_monitor_execution(world, "data-quality", f"s3://{world.bucket}/{folder}")
    outcome = world.results("model_monitor").on_job(_parse(state_change(detail)))
    assert outcome.action == "published"
    assert outcome.metrics == {"baseline_drift_violations": 2.0, "data_quality_violations": 3.0}
    assert world.maximum("feature_baseline_drift_length", f"{world.prefix}-data-quality") is None


def test_a_model_monitor_run_without_its_output_is_found_by_its_schedules_newest_report(world: World) -> None:
    old = f"reports/{world.model_endpoint}/{world.prefix}-data-quality/2026/11/23/09/"
    world.put_json(f"{old}constraint_violations.json", {"violations": []})
    new = f"reports/{world.model_endpoint}/{world.prefix}-data-quality/2026/11/23/10/"
    world.put_json(f"{new}constraint_violations.json", VIOLATIONS)
    created = datetime.now(UTC) - timedelta(minutes=5)  # both were written after it: the later folder wins
    detail = model_monitor_execution(world, "data-quality", None, created=created)
    outcome = world.results("model_monitor").on_job(_parse(state_change(detail)))
    assert outcome.action == "published" and outcome.report.endswith("/2026/11/23/10/")


def test_model_qualitys_merge_job_has_no_report_and_publishes_nothing(world: World) -> None:
    detail = model_monitor_execution(world, "model-quality", f"s3://{world.bucket}/merged/{world.model_endpoint}/x")
    detail["ProcessingJobName"] = "groundtruth-merge-202611231000-1ec3e9b0c8ba1f53"
    outcome = world.results("model_monitor").on_job(_parse(state_change(detail)))
    assert outcome.action == "no_report"
    assert world.maximum("model_quality_violations", f"{world.prefix}-model-quality") is None


def test_a_failed_run_is_counted(world: World) -> None:
    outcome = world.results().on_job(_parse(state_change(world.platform_job("data-quality"), status="Failed")))
    assert outcome.action == "failed_run"
    assert world.maximum("failed_runs", f"{world.prefix}-data-quality") == 1


@pytest.mark.parametrize("name", ["mlops-prod-monitor-dq-2026112310", "mlops-dev-model-build-evaluate-k3h2"])
def test_other_jobs_are_ignored(world: World, name: str) -> None:
    detail = {"ProcessingJobName": name, "ProcessingJobStatus": "Completed"}
    assert world.results().on_job(_parse(state_change(detail))).action == "ignored"


def test_a_redelivered_event_publishes_the_same_datapoints(world: World) -> None:
    folder = f"reports/{world.model_endpoint}/{world.prefix}-data-quality/2026/11/23/10/"
    world.put_json(f"{folder}constraint_violations.json", VIOLATIONS)
    event = state_change(world.platform_job("data-quality"))
    first = world.results().on_job(_parse(event))
    again = world.results().on_job(_parse(event))
    assert first.metrics == again.metrics
    schedule = f"{world.prefix}-data-quality"
    assert world.maximum("baseline_drift_violations", schedule) == 2
    assert world.timestamps("baseline_drift_violations", schedule) == [HOUR]


@pytest.fixture
def lambda_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    set_environment(monkeypatch, world.endpoint, settings_for(world.bucket, endpoint=world.model_endpoint))
    for cached in (handler.settings, handler.results):
        cached.cache_clear()
    yield world
    for cached in (handler.settings, handler.results):
        cached.cache_clear()


def test_the_handler_publishes_from_eventbridges_event(lambda_env: World) -> None:
    world = lambda_env
    folder = f"reports/{world.model_endpoint}/{world.prefix}-data-quality/2026/11/23/10/"
    world.put_json(f"{folder}constraint_violations.json", {"violations": []})
    outcome = handler.lambda_handler(
        state_change(world.platform_job("data-quality")), LambdaContextStandIn(function_name="results")
    )
    assert outcome["action"] == "published" and outcome["metrics"]["data_quality_violations"] == 0


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda e: e.update({"detail-type": "SageMaker Training Job State Change"}), "detail-type"),
        (lambda e: e["detail"].pop("ProcessingJobName"), "detail.ProcessingJobName"),
        (lambda e: e.update({"source": "aws.s3"}), "source"),
    ],
)
def test_a_malformed_event_names_the_field(lambda_env: World, mutate: Any, named: str) -> None:
    event = state_change({"ProcessingJobName": "x", "ProcessingJobStatus": "Completed"})
    mutate(event)
    with pytest.raises(handler.UnsupportedEvent, match=named):
        handler.process(event, handler.results())
