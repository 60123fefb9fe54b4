"""Approve or reject a deploy that waits for a person before a stage.

    python -m pipelines.approve --config config/dev.yaml --list
    python -m pipelines.approve --config config/dev.yaml --stage prod [--version 7]
    python -m pipelines.approve --config config/dev.yaml --stage prod --reject --reason "latency too high"

The deploy state machine records each waiting approval (its task token, the version, the execution)
in the registry environment's approvals table; this command reads it, sends the decision to the
state machine as the caller (who is recorded), and closes the approval. ``--version`` guards against
approving another version than the one you reviewed. Needs the ``<prefix>-deploy-approver`` policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stacks.config import ConfigError, EnvironmentConfig, load_config


class ApprovalError(RuntimeError):
    """Nothing to decide, or the decision cannot be delivered; the message says why."""


@dataclass(frozen=True)
class Waiting:
    stage: str
    version: int
    package_arn: str
    execution_arn: str
    requested_at: str
    token: str
    deploy_id: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(config: EnvironmentConfig, dynamodb: Any, stage: str) -> Waiting | None:
    """The approval waiting before ``stage``, if any."""
    item = dynamodb.get_item(TableName=config.deploy_table_name, Key={"id": {"S": f"approval#{stage}"}}).get("Item")
    if not item:
        return None
    return Waiting(
        stage=stage,
        version=int(item["version"]["N"]),
        package_arn=item["package_arn"]["S"],
        execution_arn=item["execution_arn"]["S"],
        requested_at=item["requested_at"]["S"],
        token=item["token"]["S"],
        deploy_id=item["deploy_id"]["S"],
    )


def decide(
    config: EnvironmentConfig,
    *,
    stage: str,
    approve: bool,
    reason: str,
    version: int | None,
    dynamodb: Any,
    stepfunctions: Any,
    caller: str,
) -> Waiting:
    """Send the decision on the approval waiting before ``stage``, record it, close the approval.

    Raises:
        ApprovalError: no deploy waits there, it waits with another version, or it is gone.
    """
    deploy = config.deploy
    if deploy is None:
        raise ApprovalError(f"{config.name} has no deploy section: its registry deploys nowhere")
    if stage not in deploy.approvals:
        raise ApprovalError(
            f"{stage} is not a stage that waits for a person (deploy.approval_before: {', '.join(deploy.approvals)})"
        )
    pending = waiting(config, dynamodb, stage)
    if pending is None:
        raise ApprovalError(f"no deploy waits for an approval before {stage}")
    if version is not None and version != pending.version:
        raise ApprovalError(f"the deploy waiting before {stage} is version {pending.version}, not {version}")
    try:
        if approve:
            output = {"decision": "approved", "by": caller, "at": _now(), "reason": reason}
            stepfunctions.send_task_success(taskToken=pending.token, output=json.dumps(output))
        else:
            stepfunctions.send_task_failure(
                taskToken=pending.token,
                error="Rejected",
                cause=f"rejected by {caller} before {stage}: {reason}"[:32768],
            )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
            _close(config, dynamodb, pending)
            raise ApprovalError(
                f"the deploy of version {pending.version} waiting before {stage} is gone (timed out or stopped): "
                f"{exc.response['Error'].get('Message', '')}"
            ) from None
        raise
    dynamodb.put_item(
        TableName=config.deploy_table_name,
        Item={
            "id": {"S": f"decision#{pending.deploy_id}#{stage}"},
            "decision": {"S": "approved" if approve else "rejected"},
            "by": {"S": caller},
            "at": {"S": _now()},
            "reason": {"S": reason or "-"},
            "version": {"N": str(pending.version)},
            "execution_arn": {"S": pending.execution_arn},
        },
    )
    _close(config, dynamodb, pending)
    return pending


def _close(config: EnvironmentConfig, dynamodb: Any, pending: Waiting) -> None:
    try:
        dynamodb.delete_item(
            TableName=config.deploy_table_name,
            Key={"id": {"S": f"approval#{pending.stage}"}},
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={":token": {"S": pending.token}},
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise  # a newer deploy's approval replaced it: leave that one alone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Approve or reject a deploy waiting before a stage.")
    parser.add_argument("--config", type=Path, required=True, help="the registry environment's config file")
    parser.add_argument("--stage", help="the stage the deploy waits before, e.g. prod")
    parser.add_argument("--version", type=int, help="the version you reviewed (refused if another waits)")
    parser.add_argument("--reject", action="store_true", help="reject instead of approve")
    parser.add_argument("--reason", default="", help="recorded with the decision")
    parser.add_argument("--list", action="store_true", help="show what waits, decide nothing")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        import boto3

        session = boto3.Session(region_name=config.region)
        dynamodb = session.client("dynamodb")
        if args.list or not args.stage:
            stages = config.deploy.approvals if config.deploy else []
            found = [w for w in (waiting(config, dynamodb, s) for s in stages) if w is not None]
            for w in found:
                print(f"{w.stage}: version {w.version} waits since {w.requested_at} ({w.execution_arn})")
            if not found:
                print("no deploy waits for an approval")
            return 0
        caller = session.client("sts").get_caller_identity()["Arn"]
        pending = decide(
            config,
            stage=args.stage,
            approve=not args.reject,
            reason=args.reason,
            version=args.version,
            dynamodb=dynamodb,
            stepfunctions=session.client("stepfunctions"),
            caller=caller,
        )
    except (ConfigError, ApprovalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS refused or could not be reached: {exc}", file=sys.stderr)
        return 1
    verdict = "rejected" if args.reject else "approved"
    print(f"{verdict} version {pending.version} for {args.stage} as {caller}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
