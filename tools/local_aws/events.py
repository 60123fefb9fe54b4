"""The events AWS would send, built from what happened here, in the shapes AWS documents, and the rules they match.

moto delivers EventBridge events only to SQS, logs and buses, never to Lambda targets, and evaluates no
alarm. A local run therefore builds each event itself (SageMaker's documented shapes, the synthesized
alarm's own definition) and hands it to the function whose synthesized rule matches it, using moto's
EventBridge pattern engine: the same patterns, matched as EventBridge matches them.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

from moto.events.models import EventPattern


def _event(
    detail_type: str, source: str, account: str, region: str, resources: list[str], detail: Any
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


def package_state_change(package: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """ "SageMaker Model Package State Change" for a package (DescribeModelPackage's answer)."""
    detail = {
        k: (v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime.datetime) else v)
        for k, v in package.items()
        if k != "ResponseMetadata"
    }
    return _event(
        "SageMaker Model Package State Change", "aws.sagemaker", account, region, [package["ModelPackageArn"]], detail
    )


def job_state_change(job: dict[str, Any], account: str, region: str, status: str = "Completed") -> dict[str, Any]:
    """ "SageMaker Processing Job State Change" for a job (DescribeProcessingJob's answer; times in epoch ms)."""
    detail = {
        k: (int(v.timestamp() * 1000) if isinstance(v, datetime.datetime) else v)
        for k, v in job.items()
        if k != "ResponseMetadata"
    }
    detail["ProcessingJobStatus"] = status
    return _event(
        "SageMaker Processing Job State Change",
        "aws.sagemaker",
        account,
        region,
        [job.get("ProcessingJobArn", "")],
        detail,
    )


def alarm_state_change(
    alarm: dict[str, Any], *, description: str, state: str, reason: str, account: str, region: str
) -> dict[str, Any]:
    """ "CloudWatch Alarm State Change" for a synthesized alarm (its properties, references resolved)."""
    metrics = []
    for metric in alarm.get("Metrics", []):
        if "MetricStat" not in metric:
            continue
        stat = metric["MetricStat"]
        metrics.append(
            {
                "id": metric.get("Id", "m1"),
                "metricStat": {
                    "metric": {
                        "namespace": stat["Metric"]["Namespace"],
                        "name": stat["Metric"]["MetricName"],
                        "dimensions": {d["Name"]: d["Value"] for d in stat["Metric"].get("Dimensions", [])},
                    },
                    "period": stat["Period"],
                    "stat": stat["Stat"],
                },
                "returnData": metric.get("ReturnData", True),
            }
        )
    name = alarm["AlarmName"]
    return _event(
        "CloudWatch Alarm State Change",
        "aws.cloudwatch",
        account,
        region,
        [f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"],
        {
            "alarmName": name,
            "state": {"value": state, "reason": reason},
            "previousState": {"value": "OK"},
            "configuration": {"description": description, "metrics": metrics},
        },
    )


def matching_rules(template: dict[str, Any], event: dict[str, Any]) -> list[str]:
    """The logical ids of the template's EventBridge rules whose pattern matches ``event``."""
    return [
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule"
        and "EventPattern" in resource["Properties"]
        and EventPattern.load(json.dumps(resource["Properties"]["EventPattern"])).matches_event(event)  # type: ignore[arg-type]
    ]
