"""The events an endpoint's monitoring raises, as EventBridge patterns: one definition, two users.

The endpoint's stack forwards these events to its source environment's bus when that is another
account (``forwarding.py``); the source's retrain stack matches the same patterns on its bus
(``stacks/retrain``). EventBridge keeps an event's ``account`` when it forwards it, so the patterns
name the endpoint's account in both places.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_events as events

from stacks.config import EnvironmentConfig, MonitoringCheck, MonitoringEngine

# The alarms of one endpoint (stacks/monitoring/alarms.py): which check each judges, and whether an
# ALARM retrains (drift and model quality) or only notifies (the other data-quality checks: a missing
# column or a wrong type is an integration fault that retraining would not fix).
ALARMS: dict[str, tuple[MonitoringCheck, bool]] = {
    "drift": ("data-quality", True),
    "data-quality": ("data-quality", False),
    "model-quality": ("model-quality", True),
}


def alarm_kinds(stage: EnvironmentConfig) -> list[str]:
    """The alarms an endpoint has: drift and data quality, and model quality where it is checked."""
    assert stage.monitoring is not None
    return [kind for kind, (check, _) in ALARMS.items() if check in stage.monitoring.checks]


def alarm_pattern(stage: EnvironmentConfig) -> dict[str, Any]:
    """An endpoint's monitoring alarms going into ALARM."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "account": [stage.account],
        "region": [stage.region],
        "detail": {
            "alarmName": sorted(stage.monitoring_alarm_name(kind) for kind in alarm_kinds(stage)),
            "state": {"value": ["ALARM"]},
        },
    }


def monitoring_schedule_arns(stage: EnvironmentConfig) -> list[str]:
    """Model Monitor's schedules of an endpoint (SageMaker's ARNs hold the name in lower case)."""
    assert stage.monitoring is not None
    return sorted(
        f"arn:{stage.partition}:sagemaker:{stage.region}:{stage.account}:monitoring-schedule/"
        f"{stage.monitoring_schedule_name(check).lower()}"
        for check in stage.monitoring.checks
    )


def run_pattern(stage: EnvironmentConfig, statuses: list[str]) -> dict[str, Any]:
    """An endpoint's monitoring runs reaching one of ``statuses``: the platform's jobs by name prefix,
    Model Monitor's executions by their schedule."""
    assert stage.monitoring is not None
    if stage.monitoring.engine is MonitoringEngine.MODEL_MONITOR:
        which: dict[str, Any] = {"MonitoringScheduleArn": monitoring_schedule_arns(stage)}
    else:
        which = {"ProcessingJobName": [{"prefix": stage.monitoring_job_prefix}]}
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change"],
        "account": [stage.account],
        "region": [stage.region],
        "detail": {**which, "ProcessingJobStatus": statuses},
    }


def failed_run_pattern(stage: EnvironmentConfig) -> dict[str, Any]:
    """An endpoint's monitoring runs that failed or were stopped (no verdict either way): notified, never
    retrained on."""
    return run_pattern(stage, ["Failed", "Stopped"])


def failed_build_pattern(config: EnvironmentConfig) -> dict[str, Any]:
    """The build pipeline's executions that failed or were stopped: a retrain among them frees its cooldown."""
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Building Pipeline Execution Status Change"],
        "account": [config.account],
        "region": [config.region],
        "detail": {
            "currentPipelineExecutionStatus": ["Failed", "Stopped"],
            # SageMaker writes the pipeline's name in its ARNs in lower case.
            "pipelineArn": [
                f"arn:{config.partition}:sagemaker:{config.region}:{config.account}:pipeline/"
                f"{config.build_pipeline_name.lower()}"
            ],
        },
    }


def as_event_pattern(pattern: dict[str, object]) -> events.EventPattern:
    """A raw EventBridge pattern (as written in stacks/monitoring/events.py) as CDK's EventPattern."""
    return events.EventPattern(
        source=pattern["source"],  # type: ignore[arg-type]
        detail_type=pattern["detail-type"],  # type: ignore[arg-type]
        account=pattern["account"],  # type: ignore[arg-type]
        region=pattern["region"],  # type: ignore[arg-type]
        detail=pattern["detail"],  # type: ignore[arg-type]
    )
