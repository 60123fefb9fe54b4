"""The monitoring launcher through boto3 against a moto server on 127.0.0.1: S3 and SageMaker.

Events have the shape EventBridge Scheduler sends: the target input the stack templates, with
Scheduler's context attributes filled in. moto creates processing jobs (and reports them complete
at once) but accepts a second job of the same name; SageMaker answers ResourceInUse, which is
injected at botocore's send hook on the real client for that one test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from monitoring_launcher import handler
from monitoring_launcher.events import Settings
from monitoring_launcher.launcher import Launcher

from tests.integration.conftest import REGION, aws_client
from tests.integration.lambdas.conftest import LambdaContextStandIn, set_environment

ACCOUNT = "123456789012"
PREFIX = "mlops-staging"
ENDPOINT = f"{PREFIX}-endpoint"


def settings_for(bucket: str, **changes: str) -> dict[str, str]:
    """The environment stacks/monitoring/platform_engine.py gives the launcher (names as config derives them)."""
    return {
        "ENDPOINT_NAME": ENDPOINT,
        "VARIANT_NAME": "primary",
        "MONITORING_BUCKET": bucket,
        "CAPTURE_PREFIX": "capture",
        "GROUND_TRUTH_PREFIX": f"ground-truth/{ENDPOINT}",
        "REPORT_PREFIX": f"reports/{ENDPOINT}",
        "CURRENT_BASELINE_URI": f"s3://{bucket}/baselines/{ENDPOINT}/current/",
        "IMAGE_REPOSITORY": f"111111111111.dkr.ecr.{REGION}.amazonaws.com/mlops-dev/training",
        "JOB_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-monitoring-job",
        "KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "SUBNET_IDS": "subnet-0aaa,subnet-0bbb",
        "SECURITY_GROUP_IDS": "sg-0ccc",
        "INSTANCE_TYPE": "ml.m5.large",
        "VOLUME_SIZE_GB": "30",
        "MAX_RUNTIME_SECONDS": "3600",
        "JOB_NAME_PREFIX": f"{PREFIX}-monitor-",
        "PERIOD_HOURS": "1",
        "GROUND_TRUTH_DELAY_HOURS": "24",
        "QUALITY_TOLERANCE": "0.1",
        "PROBLEM_TYPE": "regression",
        "DATA_QUALITY_SCHEDULE": f"{PREFIX}-data-quality",
        "MODEL_QUALITY_SCHEDULE": f"{PREFIX}-model-quality",
        **changes,
    }


def invocation(check: str = "data-quality", when: str = "2026-11-23T10:10:00Z", attempt: str = "1") -> dict:
    """What Scheduler delivers for the stack's input template (context attributes filled in)."""
    return {
        "attempt": attempt,
        "check": check,
        "execution_id": str(uuid.uuid4()),
        "schedule_arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{PREFIX}-{check}",
        "scheduled_time": when,
    }


@dataclass
class World:
    endpoint: str
    bucket: str
    s3: Any
    sagemaker: Any

    def launcher(self, sagemaker: Any = None, **changes: str) -> Launcher:
        return Launcher(
            Settings.model_validate(settings_for(self.bucket, **changes)),
            s3=self.s3,
            sagemaker=sagemaker or self.sagemaker,
        )

    def put(self, key: str, body: bytes = b"{}\n") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def job(self, name: str) -> dict:
        return self.sagemaker.describe_processing_job(ProcessingJobName=name)

    def jobs(self) -> list[str]:
        return [j["ProcessingJobName"] for j in self.sagemaker.list_processing_jobs()["ProcessingJobSummaries"]]


@pytest.fixture
def world(moto_endpoint: str) -> Iterator[World]:
    bucket = f"monitoring-{uuid.uuid4().hex[:8]}"
    s3 = aws_client("s3", moto_endpoint)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    # What the deploy's baseline function made current (version 3).
    version = {
        "model_package_arn": f"arn:aws:sagemaker:{REGION}:111111111111:model-package/mlops-dev-models/3",
        "image_tag": "sha-abc",
        "baseline_uri": f"s3://{bucket}/baselines/{ENDPOINT}/v3-0123456789ab/",
    }
    s3.put_object(Bucket=bucket, Key=f"baselines/{ENDPOINT}/current/version.json", Body=json.dumps(version).encode())
    yield World(moto_endpoint, bucket, s3, aws_client("sagemaker", moto_endpoint))


def _unique(prefix: str) -> str:
    # moto keeps jobs for the session: each test launches under its own job-name prefix.
    return f"{prefix}{uuid.uuid4().hex[:6]}-"


def test_a_data_quality_run_checks_the_previous_hour_in_an_isolated_job(world: World) -> None:
    world.put(f"capture/{ENDPOINT}/primary/2026/11/23/09/15-02-123-a.jsonl")
    world.put(f"capture/{ENDPOINT}/primary/2026/11/23/10/00-01-000-b.jsonl")  # the next hour: not this run's
    prefix = _unique(f"{PREFIX}-monitor-")
    launch = world.launcher(JOB_NAME_PREFIX=prefix).launch(_run(invocation()))
    assert launch.action == "started" and launch.job_name == f"{prefix}dq-2026112310"
    job = world.job(launch.job_name)
    inputs = {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}
    assert inputs["capture"]["S3Uri"] == f"s3://{world.bucket}/capture/{ENDPOINT}/primary/2026/11/23/09/"
    assert inputs["capture"]["LocalPath"] == "/opt/ml/processing/input/capture"
    assert inputs["baseline"]["S3Uri"] == f"s3://{world.bucket}/baselines/{ENDPOINT}/v3-0123456789ab/"
    assert job["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "-m",
        "ml_code.monitor",
        "--baseline",
        "/opt/ml/processing/baseline",
        "--data",
        "/opt/ml/processing/input/capture",
        "--output",
        "/opt/ml/processing/output",
    ]
    assert job["AppSpecification"]["ImageUri"].endswith("/mlops-dev/training:sha-abc")
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == (
        f"s3://{world.bucket}/reports/{ENDPOINT}/{PREFIX}-data-quality/2026/11/23/10/"
    )
    assert job["ProcessingOutputConfig"]["KmsKeyId"].startswith(f"arn:aws:kms:{REGION}:")
    network = job["NetworkConfig"]
    assert network["EnableNetworkIsolation"] is True
    assert network["VpcConfig"] == {"SecurityGroupIds": ["sg-0ccc"], "Subnets": ["subnet-0aaa", "subnet-0bbb"]}
    assert job["RoleArn"].endswith(f":role/{PREFIX}-monitoring-job")


def _run(event: dict) -> Any:
    from monitoring_launcher.events import ScheduledRun

    return ScheduledRun.model_validate(event)


def test_before_the_first_deploy_nothing_starts(world: World) -> None:
    world.s3.delete_object(Bucket=world.bucket, Key=f"baselines/{ENDPOINT}/current/version.json")
    world.put(f"capture/{ENDPOINT}/primary/2026/11/23/09/a.jsonl")
    launch = world.launcher(JOB_NAME_PREFIX=_unique("x-")).launch(_run(invocation()))
    assert launch.action == "skipped" and "no version deployed yet" in launch.reason


def test_an_hour_without_captured_data_starts_nothing(world: World) -> None:
    prefix = _unique(f"{PREFIX}-monitor-")
    launch = world.launcher(JOB_NAME_PREFIX=prefix).launch(_run(invocation()))
    assert launch.action == "skipped" and "no captured data" in launch.reason
    assert not [j for j in world.jobs() if j.startswith(prefix)]


def test_model_quality_checks_the_window_whose_labels_have_arrived(world: World) -> None:
    # Run at 2026-11-23 10:10 with a 24 h delay: the inferences of 2026-11-22 09:00-10:00, and the
    # labels collected since then, by day folder (only the days that hold labels become inputs).
    world.put(f"capture/{ENDPOINT}/primary/2026/11/22/09/a.jsonl")
    world.put(f"ground-truth/{ENDPOINT}/2026/11/23/08/labels.jsonl")
    prefix = _unique(f"{PREFIX}-monitor-")
    sagemaker, sent = _recording(world)
    launch = world.launcher(sagemaker=sagemaker, JOB_NAME_PREFIX=prefix).launch(_run(invocation("model-quality")))
    assert launch.action == "started" and launch.job_name == f"{prefix}mq-2026112310"
    job = world.job(launch.job_name)
    inputs = {i["InputName"]: i["S3Input"] for i in job["ProcessingInputs"]}
    assert inputs["capture"]["S3Uri"].endswith("/capture/mlops-staging-endpoint/primary/2026/11/22/09/")
    assert sorted(n for n in inputs if n.startswith("ground-truth")) == ["ground-truth-20261123"]
    assert inputs["ground-truth-20261123"]["LocalPath"] == "/opt/ml/processing/input/ground_truth/20261123"
    arguments = job["AppSpecification"]["ContainerEntrypoint"]
    assert arguments[arguments.index("--ground-truth") + 1] == "/opt/ml/processing/input/ground_truth"
    assert arguments[arguments.index("--problem-type") + 1] == "regression"
    assert arguments[arguments.index("--quality-tolerance") + 1] == "0.1"
    (output,) = job["ProcessingOutputConfig"]["Outputs"]
    # Only model quality's own files are the model-quality report (Model Monitor's layout).
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output/model_quality"
    assert output["S3Output"]["S3Uri"].endswith(f"/{PREFIX}-model-quality/2026/11/23/10/")
    # moto keeps no Environment: the request as sent says what the run checked.
    (request,) = sent
    assert request["Environment"] == {
        "MONITORING_ENDPOINT": ENDPOINT,
        "MONITORING_SCHEDULE": f"{PREFIX}-model-quality",
        "MONITORING_CHECK": "model-quality",
        "MONITORING_WINDOW_START": "2026-11-22T09:00:00+00:00",
        "MONITORING_WINDOW_END": "2026-11-22T10:00:00+00:00",
        "MONITORING_MODEL_PACKAGE": f"arn:aws:sagemaker:{REGION}:111111111111:model-package/mlops-dev-models/3",
    }


def _recording(world: World) -> tuple[Any, list[dict]]:
    """A SageMaker client that records the CreateProcessingJob parameters it sends (to moto, unchanged)."""
    sagemaker, sent = aws_client("sagemaker", world.endpoint), []
    sagemaker.meta.events.register(
        "before-parameter-build.sagemaker.CreateProcessingJob", lambda params, **_: sent.append(params)
    )
    return sagemaker, sent


def test_model_quality_without_any_ground_truth_yet_starts_nothing(world: World) -> None:
    world.put(f"capture/{ENDPOINT}/primary/2026/11/22/09/a.jsonl")
    launch = world.launcher(JOB_NAME_PREFIX=_unique("x-")).launch(_run(invocation("model-quality")))
    assert launch.action == "skipped" and "no ground truth" in launch.reason


def test_a_daily_run_checks_the_previous_day(world: World) -> None:
    world.put(f"capture/{ENDPOINT}/primary/2026/11/22/17/a.jsonl")
    prefix = _unique(f"{PREFIX}-monitor-")
    launcher = world.launcher(JOB_NAME_PREFIX=prefix, PERIOD_HOURS="24")
    launch = launcher.launch(_run(invocation(when="2026-11-23T00:10:00Z")))
    assert launch.action == "started" and launch.job_name == f"{prefix}dq-2026112300"
    inputs = {i["InputName"]: i["S3Input"] for i in world.job(launch.job_name)["ProcessingInputs"]}
    assert inputs["capture"]["S3Uri"].endswith("/primary/2026/11/22/")


def test_a_retried_invocation_names_the_same_job_and_starts_no_second(world: World) -> None:
    world.put(f"capture/{ENDPOINT}/primary/2026/11/23/09/a.jsonl")
    prefix = _unique(f"{PREFIX}-monitor-")
    first = world.launcher(JOB_NAME_PREFIX=prefix).launch(_run(invocation()))
    # moto accepts a second job of one name; SageMaker refuses it with ResourceInUse (injected).
    sagemaker = aws_client("sagemaker", world.endpoint)

    def in_use(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"__type": "ResourceInUse", "message": f"Job {first.job_name} already exists"}).encode()
        return AWSResponse(request.url, 400, {"x-amzn-requestid": "injected"}, _Raw(body))

    sagemaker.meta.events.register("before-send.sagemaker.CreateProcessingJob", in_use)
    again = world.launcher(sagemaker=sagemaker, JOB_NAME_PREFIX=prefix).launch(_run(invocation(attempt="2")))
    assert (again.action, again.job_name) == ("already_started", first.job_name)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def test_other_sagemaker_errors_fail_the_invocation_for_schedulers_retry(world: World) -> None:
    from botocore.exceptions import ClientError

    world.put(f"capture/{ENDPOINT}/primary/2026/11/23/09/a.jsonl")
    sagemaker = aws_client("sagemaker", world.endpoint, config=Config(retries={"mode": "standard", "max_attempts": 1}))

    def limit(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"__type": "ResourceLimitExceeded", "message": "quota"}).encode()
        return AWSResponse(request.url, 400, {"x-amzn-requestid": "injected"}, _Raw(body))

    sagemaker.meta.events.register("before-send.sagemaker.CreateProcessingJob", limit)
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        world.launcher(sagemaker=sagemaker, JOB_NAME_PREFIX=_unique("x-")).launch(_run(invocation()))


# --- the handler: Powertools, the environment, bad input ----------------------------------------------


@pytest.fixture
def lambda_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    set_environment(monkeypatch, world.endpoint, settings_for(world.bucket, JOB_NAME_PREFIX=_unique("h-")))
    for cached in (handler.settings, handler.launcher):
        cached.cache_clear()
    yield world
    for cached in (handler.settings, handler.launcher):
        cached.cache_clear()


def test_the_handler_launches_from_schedulers_invocation(lambda_env: World) -> None:
    lambda_env.put(f"capture/{ENDPOINT}/primary/2026/11/23/09/a.jsonl")
    outcome = handler.lambda_handler(invocation(), LambdaContextStandIn(function_name=f"{PREFIX}-monitoring-launcher"))
    assert outcome["action"] == "started" and outcome["job_name"] in lambda_env.jobs()


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({**invocation(), "check": "bias"}, "check"),
        ({**invocation(), "scheduled_time": "2026-11-23T10:10:00"}, "scheduled_time"),
        ({k: v for k, v in invocation().items() if k != "scheduled_time"}, "scheduled_time"),
        ([], "event"),
    ],
)
def test_an_input_that_is_not_a_schedules_names_the_field(lambda_env: World, event: Any, named: str) -> None:
    with pytest.raises(handler.BadInvocation, match=named):
        handler.process(event, handler.launcher())
