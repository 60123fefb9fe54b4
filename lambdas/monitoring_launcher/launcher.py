"""The platform engine's launch decision: which window, which inputs, which job. Pure of Lambda.

A run at ``scheduled_time`` checks the last full window before it (the previous hour, or the
previous day for a daily schedule):

- **data quality** reads the captured requests of that window,
  ``s3://<bucket>/<capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/`` (or ``.../dd/`` for a day);
- **model quality** reads the window that ended ``ground_truth_delay_hours`` earlier (its labels have
  arrived by now), and the ground truth collected since that window began, by day folder
  (``<ground truth prefix>/yyyy/mm/dd/``): labels are filed by the hour they were collected, not by
  the inference's, and a label that matches no captured record is simply not joined.

The job runs ``python -m ml_code.monitor`` in the training image of the served version (its tag and
its baseline folder are read from ``current/version.json``, which each deploy writes, so a run is
pinned to the version it judges), in the private subnets with network isolation and the data key,
and writes Model Monitor's files under
``s3://<bucket>/<reports>/<schedule>/yyyy/mm/dd/hh/`` (the run's hour, as Model Monitor files them).
Its name is derived from the run's hour, so a redelivered invocation starts nothing new.
A window without captured data (or, for model quality, without any ground truth yet), or an
endpoint with no version deployed yet, starts no job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError

from monitoring_launcher.events import Check, DeployedVersion, ScheduledRun, Settings

Action = Literal["started", "already_started", "skipped"]
BASELINE_DIR = "/opt/ml/processing/baseline"
CAPTURE_DIR = "/opt/ml/processing/input/capture"
GROUND_TRUTH_DIR = "/opt/ml/processing/input/ground_truth"
OUTPUT_DIR = "/opt/ml/processing/output"
# ml_code.monitor writes model quality's files into this subfolder of its output: the model-quality
# report is that folder alone, laid out as Model Monitor's (statistics.json, constraint_violations.json).
MODEL_QUALITY_SUBDIR = "model_quality"
MAX_INPUTS = 10  # SageMaker's limit of ProcessingInputs per job
VERSION_FILE = "version.json"


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval [start, end)."""

    start: datetime
    end: datetime

    def hours(self) -> list[datetime]:
        out, t = [], self.start
        while t < self.end:
            out.append(t)
            t += timedelta(hours=1)
        return out

    def days(self) -> list[datetime]:
        out, t = [], self.start.replace(hour=0)
        while t < self.end:
            out.append(t)
            t += timedelta(days=1)
        return out


@dataclass(frozen=True)
class Launch:
    """What the launcher did for one run, as logged and returned."""

    action: Action
    check: Check
    job_name: str
    reason: str
    inputs: list[str] = field(default_factory=list)
    report_uri: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_hour(scheduled_time: datetime) -> datetime:
    """The hour a run belongs to: its scheduled time, to the hour (UTC)."""
    return scheduled_time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def windows(run: ScheduledRun, settings: Settings) -> tuple[Window, Window | None]:
    """The captured data's window, and for model quality the window the ground truth is read from."""
    end = run_hour(run.scheduled_time)
    if settings.period_hours == 24:
        end = end.replace(hour=0)
    period = timedelta(hours=settings.period_hours)
    if run.check == "data-quality":
        return Window(end - period, end), None
    delay = timedelta(hours=settings.ground_truth_delay_hours)
    captured = Window(end - delay - period, end - delay)
    # Labels for those inferences were collected from the window's start until now.
    return captured, Window(captured.start, end)


def capture_prefix(settings: Settings, window: Window) -> str:
    """The capture folder of a window: one hour, or one day."""
    base = f"{settings.capture_prefix}/{settings.endpoint_name}/{settings.variant_name}"
    fmt = "%Y/%m/%d/%H" if window.end - window.start == timedelta(hours=1) else "%Y/%m/%d"
    return f"{base}/{window.start.strftime(fmt)}/"


def job_name(settings: Settings, check: Check, hour: datetime) -> str:
    """``<prefix>-monitor-dq-yyyymmddhh`` (``-mq-`` for model quality): one job per check and run."""
    short = "dq" if check == "data-quality" else "mq"
    return f"{settings.job_name_prefix}{short}-{hour.strftime('%Y%m%d%H')}"


def report_uri(settings: Settings, check: Check, hour: datetime) -> str:
    """Where a run's files go: Model Monitor's layout, ``<reports>/<schedule>/yyyy/mm/dd/hh/``."""
    return f"s3://{settings.bucket}/{settings.report_prefix}/{settings.schedule(check)}/{hour.strftime('%Y/%m/%d/%H')}/"


class Launcher:
    """Decides and starts one run's job; the clients are passed in."""

    def __init__(self, settings: Settings, *, s3: Any, sagemaker: Any) -> None:
        self.settings, self.s3, self.sagemaker = settings, s3, sagemaker

    def launch(self, run: ScheduledRun) -> Launch:
        """Start the job for this run, or say why not.

        Raises:
            ClientError: S3 or SageMaker refused (other than the job existing already): the
                invocation fails, and Scheduler retries it, then dead-letters it.
        """
        settings, hour = self.settings, run_hour(run.scheduled_time)
        name = job_name(settings, run.check, hour)
        version = self._deployed()
        if version is None:
            return Launch("skipped", run.check, name, f"no version deployed yet ({settings.current_baseline_uri})")
        captured, labelled = windows(run, settings)
        capture = capture_prefix(settings, captured)
        if not self._has_objects(capture):
            return Launch("skipped", run.check, name, f"no captured data under s3://{settings.bucket}/{capture}")
        inputs = [
            _input("baseline", version.baseline_uri, BASELINE_DIR),
            _input("capture", f"s3://{settings.bucket}/{capture}", CAPTURE_DIR),
        ]
        arguments = ["--baseline", BASELINE_DIR, "--data", CAPTURE_DIR, "--output", OUTPUT_DIR]
        output = OUTPUT_DIR
        if labelled is not None:
            days = [
                day
                for day in labelled.days()
                if self._has_objects(f"{settings.ground_truth_prefix}/{day.strftime('%Y/%m/%d')}/")
            ]
            if not days:
                return Launch(
                    "skipped",
                    run.check,
                    name,
                    f"no ground truth under s3://{settings.bucket}/{settings.ground_truth_prefix}/ collected "
                    f"since {labelled.start.isoformat()}",
                )
            for day in days[-(MAX_INPUTS - len(inputs)) :]:
                folder = day.strftime("%Y/%m/%d")
                inputs.append(
                    _input(
                        f"ground-truth-{day.strftime('%Y%m%d')}",
                        f"s3://{settings.bucket}/{settings.ground_truth_prefix}/{folder}/",
                        f"{GROUND_TRUTH_DIR}/{day.strftime('%Y%m%d')}",
                    )
                )
            arguments += [
                "--ground-truth",
                GROUND_TRUTH_DIR,
                "--problem-type",
                settings.problem_type,
                "--quality-tolerance",
                f"{settings.quality_tolerance:g}",
            ]
            output = f"{OUTPUT_DIR}/{MODEL_QUALITY_SUBDIR}"
        destination = report_uri(settings, run.check, hour)
        request = {
            "ProcessingJobName": name,
            "RoleArn": settings.role_arn,
            "AppSpecification": {
                "ImageUri": f"{settings.image_repository}:{version.image_tag}",
                "ContainerEntrypoint": ["python3", "-m", "ml_code.monitor", *arguments],
            },
            "ProcessingInputs": inputs,
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "report",
                        "S3Output": {"S3Uri": destination, "LocalPath": output, "S3UploadMode": "EndOfJob"},
                    }
                ],
                "KmsKeyId": settings.kms_key_arn,
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": settings.instance_type,
                    "VolumeSizeInGB": settings.volume_size_gb,
                    "VolumeKmsKeyId": settings.kms_key_arn,
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
            "NetworkConfig": {
                "EnableNetworkIsolation": True,
                "EnableInterContainerTrafficEncryption": True,
                "VpcConfig": {"SecurityGroupIds": settings.security_group_ids, "Subnets": settings.subnet_ids},
            },
            # Read back by the results function and visible in the console: what this run checked.
            "Environment": {
                "MONITORING_ENDPOINT": settings.endpoint_name,
                "MONITORING_SCHEDULE": settings.schedule(run.check),
                "MONITORING_CHECK": run.check,
                "MONITORING_WINDOW_START": captured.start.isoformat(),
                "MONITORING_WINDOW_END": captured.end.isoformat(),
                "MONITORING_MODEL_PACKAGE": version.model_package_arn,
            },
        }
        sources = [i["S3Input"]["S3Uri"] for i in inputs]
        try:
            self.sagemaker.create_processing_job(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceInUse":
                return Launch("already_started", run.check, name, "a job for this run exists", sources, destination)
            raise
        return Launch(
            "started",
            run.check,
            name,
            f"checking {captured.start.isoformat()} to {captured.end.isoformat()}",
            sources,
            destination,
        )

    def _deployed(self) -> DeployedVersion | None:
        """The version the deploy made current, or None before the first deploy.

        Raises:
            ValueError: the file is not a deployed version's (names what is wrong).
        """
        bucket, _, prefix = self.settings.current_baseline_uri.removeprefix("s3://").partition("/")
        try:
            body = self.s3.get_object(Bucket=bucket, Key=f"{prefix}{VERSION_FILE}")["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return DeployedVersion.model_validate_json(body)

    def _has_objects(self, prefix: str) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.settings.bucket, Prefix=prefix, MaxKeys=1)
        return bool(listed.get("KeyCount", len(listed.get("Contents", []))))


def _input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }
