"""A finished monitoring run, turned into CloudWatch metrics. Pure of Lambda: the clients are passed in.

Both engines write Model Monitor's files; this function reads them back and publishes, in the
platform's namespace with the dimensions ``Endpoint`` and ``MonitoringSchedule``:

- ``data_quality_violations`` and ``baseline_drift_violations`` (data quality), or
  ``model_quality_violations`` (model quality): counts from ``constraint_violations.json``, for either
  engine. The alarms watch these: an alarm cannot SEARCH per-feature metrics whose names it does not
  know at deploy, and a count of violations is what both engines agree on;
- for the platform engine, the values Model Monitor would publish itself (its container cannot:
  it runs with network isolation): ``feature_baseline_drift_<feature>`` from ``metrics.json``, and the
  model-quality metrics (``rmse``, ``accuracy``, ...) from the model-quality ``statistics.json``;
- ``failed_runs`` when a run failed or was stopped.

The datapoints are stamped with the run's hour (its report folder), so a late or repeated event
overwrites nothing and lands in the period it describes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from monitoring_results.events import ProcessingJobStateChange, Settings

Action = Literal["published", "failed_run", "no_report", "ignored"]
DATA_QUALITY, MODEL_QUALITY = "data-quality", "model-quality"
VIOLATIONS_FILE = "constraint_violations.json"
# The model-quality statistics' sections, by problem type (Model Monitor's and ml_code's names).
QUALITY_SECTIONS = ("regression_metrics", "binary_classification_metrics", "multiclass_classification_metrics")
_HOUR = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/(\d{2})/?$")
_METRIC_NAME = re.compile(r"^[\x20-\x7e]{1,255}$")
BATCH = 150  # datapoints per PutMetricData call (CloudWatch takes 1,000 and 1 MB)


@dataclass(frozen=True)
class Outcome:
    """What the function did with one event."""

    action: Action
    job: str
    schedule: str = ""
    report: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Results:
    """Reads one run's report and publishes its metrics."""

    def __init__(
        self,
        settings: Settings,
        *,
        s3: Any,
        cloudwatch: Any,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings, self.s3, self.cloudwatch, self.clock = settings, s3, cloudwatch, clock

    def on_job(self, event: ProcessingJobStateChange) -> Outcome:
        """Publish what a finished run of this endpoint's monitoring found."""
        detail = event.detail
        job = detail.processing_job_name
        which = self._identify(detail)
        if which is None:
            return Outcome("ignored", job, reason="not a monitoring run of this endpoint")
        check, schedule, hour = which
        status = detail.processing_job_status
        if status in ("Failed", "Stopped"):
            stamp = hour or _hour_of(detail.creation_time) or _now_hour(self.clock())
            self._put(schedule, {"failed_runs": 1.0}, stamp)
            return Outcome("failed_run", job, schedule, metrics={"failed_runs": 1.0}, reason=f"run {status}")
        if status != "Completed":
            return Outcome("ignored", job, schedule, reason=f"status {status}")
        folder = self._report_folder(detail, schedule, hour)
        if folder is None:
            return Outcome("no_report", job, schedule, reason=f"no {VIOLATIONS_FILE} from this run")
        violations = self._json(f"{folder}{VIOLATIONS_FILE}")
        if violations is None:
            return Outcome("no_report", job, schedule, f"s3://{self.settings.bucket}/{folder}", reason="no report")
        found = [v for v in violations.get("violations", []) if isinstance(v, dict)]
        values: dict[str, float] = {}
        if check == DATA_QUALITY:
            values["data_quality_violations"] = float(len(found))
            values["baseline_drift_violations"] = float(
                sum(1 for v in found if v.get("constraint_check_type") == "baseline_drift_check")
            )
            if self.settings.engine == "platform":
                values |= _numbers(self._json(f"{folder}metrics.json") or {}, prefix="feature_baseline_drift_")
        else:
            values["model_quality_violations"] = float(len(found))
            if self.settings.engine == "platform":
                statistics = self._json(f"{folder}statistics.json") or {}
                for section in QUALITY_SECTIONS:
                    body = statistics.get(section)
                    if isinstance(body, dict):
                        values |= _numbers({k: v.get("value") for k, v in body.items() if isinstance(v, dict)})
        stamp = _hour_of_folder(folder) or hour or _hour_of(detail.creation_time) or _now_hour(self.clock())
        published = self._put(schedule, values, stamp)
        return Outcome("published", job, schedule, f"s3://{self.settings.bucket}/{folder}", published)

    # --- which run ---------------------------------------------------------------------------

    def _identify(self, detail: Any) -> tuple[str, str, datetime | None] | None:
        """(check, schedule, run hour) of a job of this endpoint's monitoring, or None."""
        settings = self.settings
        schedules = {settings.data_quality_schedule: DATA_QUALITY, settings.model_quality_schedule: MODEL_QUALITY}
        if settings.engine == "model_monitor":
            name = detail.monitoring_schedule_arn.rsplit("/", 1)[-1] if detail.monitoring_schedule_arn else ""
            if ":monitoring-schedule/" in detail.monitoring_schedule_arn and name in schedules:
                return schedules[name], name, None
            return None
        match = re.fullmatch(rf"{re.escape(settings.job_name_prefix)}(dq|mq)-(\d{{10}})", detail.processing_job_name)
        if match is None:
            return None
        check = DATA_QUALITY if match.group(1) == "dq" else MODEL_QUALITY
        schedule = settings.data_quality_schedule if check == DATA_QUALITY else settings.model_quality_schedule
        return check, schedule, datetime.strptime(match.group(2), "%Y%m%d%H").replace(tzinfo=UTC)

    def _report_folder(self, detail: Any, schedule: str, hour: datetime | None) -> str | None:
        """The run's report folder (a key prefix ending in /) in the monitoring bucket."""
        settings = self.settings
        under = f"{settings.report_prefix}/{schedule}/"
        if hour is not None:  # the platform's jobs: named after their hour, filed under it
            return f"{under}{hour.strftime('%Y/%m/%d/%H')}/"
        # Model Monitor chooses the dated folder; its job's output says which.
        config = detail.processing_output_config
        for output in config.outputs if config else []:
            uri = output.s3_output.s3_uri if output.s3_output else ""
            prefix = f"s3://{settings.bucket}/"
            if uri.startswith(prefix) and uri[len(prefix) :].startswith(under):
                return uri[len(prefix) :].rstrip("/") + "/"
        # Without it: the newest report of this schedule written since the run was created.
        newest: tuple[datetime, str] | None = None
        since = detail.creation_time
        for item in self._list(under):
            key, modified = item["Key"], item["LastModified"]
            recent = since is None or modified >= since
            # Ties (S3 keeps seconds) go to the later key: the folders are the runs' hours.
            if key.endswith(f"/{VIOLATIONS_FILE}") and recent and (newest is None or (modified, key) > newest):
                newest = (modified, key)
        return newest[1][: -len(VIOLATIONS_FILE)] if newest else None

    # --- S3 and CloudWatch ---------------------------------------------------------------------

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"s3://{self.settings.bucket}/{key}: expected a JSON object")
        return document

    def _put(self, schedule: str, values: dict[str, float], stamp: datetime) -> dict[str, float]:
        dimensions = [
            {"Name": "Endpoint", "Value": self.settings.endpoint_name},
            {"Name": "MonitoringSchedule", "Value": schedule},
        ]
        data = [
            {"MetricName": name, "Dimensions": dimensions, "Timestamp": stamp, "Value": value, "Unit": "None"}
            for name, value in sorted(values.items())
        ]
        for batch in _batches(data, BATCH):
            self.cloudwatch.put_metric_data(Namespace=self.settings.namespace, MetricData=batch)
        return dict(sorted(values.items()))


def _numbers(document: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numeric entries (bools excluded) whose names CloudWatch accepts, optionally by prefix."""
    return {
        name: float(value)
        for name, value in document.items()
        if name.startswith(prefix)
        and _METRIC_NAME.match(name)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value  # not NaN
        and abs(value) != float("inf")
    }


def _hour_of(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0) if moment else None


def _now_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_of_folder(folder: str) -> datetime | None:
    match = _HOUR.search(folder)
    if match is None:
        return None
    year, month, day, hour = (int(part) for part in match.groups())
    return datetime(year, month, day, hour, tzinfo=UTC)


def _batches(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
