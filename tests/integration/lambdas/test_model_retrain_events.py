"""Property tests of the retrain function's event handling: whatever arrives, a decision or a named error.

Events are generated from the two shapes EventBridge delivers (an alarm state change, carrying in its
description the monitoring context stacks/monitoring writes; a processing job state change) by dropping
keys, swapping in values of other JSON types, unicode, values up to EventBridge's 256 KB and strings cut
short, in the event and in the context document; and from arbitrary JSON. Each goes through the Lambda
entry point (Powertools' parser and idempotency included) against the moto server, and the test
checks what is left behind: a refused event starts nothing, notifies nothing and leaves no cooldown
or idempotency record, so the corrected event is processed when it comes.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_retrain import handler

from tests.integration.lambdas import test_model_retrain as base
from tests.integration.lambdas.conftest import LambdaContextStandIn
from tests.integration.lambdas.mutations import json_values, mutate
from tests.integration.lambdas.test_model_retrain import World, alarm_event, context

world = base.world
lambda_env = base.lambda_env

NOTIFIED = {"started", "start_failed", "retrain_failed", "skipped_cooldown", "notified", "monitoring_failed"}
DECISIONS = NOTIFIED | {"ignored"}

METRIC = ("detail", "configuration", "metrics", 0, "metricStat", "metric")
ALARM_PATHS = [
    ("id",),
    ("version",),
    ("source",),
    ("detail-type",),
    ("account",),
    ("time",),
    ("region",),
    ("resources",),
    ("detail",),
    ("detail", "alarmName"),
    ("detail", "state"),
    ("detail", "state", "value"),
    ("detail", "state", "reason"),
    ("detail", "previousState"),
    ("detail", "configuration"),
    ("detail", "configuration", "description"),
    ("detail", "configuration", "metrics"),
    (*METRIC, "dimensions"),
    (*METRIC, "dimensions", "Endpoint"),
    (*METRIC, "name"),
]
JOB_PATHS = [
    ("detail",),
    ("detail", "ProcessingJobName"),
    ("detail", "ProcessingJobStatus"),
    ("detail", "FailureReason"),
    ("detail-type",),
    ("id",),
]


def _job_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Processing Job State Change",
        "source": "aws.sagemaker",
        "account": base.ACCOUNT,
        "time": "2026-11-23T10:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"ProcessingJobName": "mlops-dev-monitor-1", "ProcessingJobStatus": "Failed", "FailureReason": "x"},
    }


CONTEXT_KEYS = ["endpoint", "check", "model_package", "reports", "action"]


@st.composite
def contexts(draw: st.DrawFn, world: World) -> str:
    """The alarm's description: its monitoring context, some of its fields dropped, retyped, unicode or cut."""
    document = json.loads(context(world, action=draw(st.sampled_from(["retrain", "notify"]))))
    for key in draw(st.lists(st.sampled_from(CONTEXT_KEYS), max_size=2, unique=True)):
        action = draw(st.sampled_from(["drop", "type", "unicode", "cut"] + (["bucket"] if key == "reports" else [])))
        if action == "drop":
            document.pop(key)
        elif action == "type":
            document[key] = draw(json_values)
        elif action == "unicode":
            document[key] = draw(st.text(min_size=1, max_size=40))
        elif action == "bucket":  # a folder in a bucket S3 could not have (the folder is listed)
            document["reports"] = (
                f"s3://{draw(st.text(min_size=1, max_size=40).filter(lambda t: '/' not in t))}/reports/"
            )
        else:
            document[key] = document[key][: draw(st.integers(0, max(0, len(document[key]) - 1)))]
    return json.dumps(document)


PIPELINE_PATHS = [
    ("id",),
    ("detail-type",),
    ("detail",),
    ("detail", "pipelineArn"),
    ("detail", "pipelineExecutionArn"),
    ("detail", "currentPipelineExecutionStatus"),
    ("detail", "pipelineExecutionDisplayName"),
]


@st.composite
def mutated_events(draw: st.DrawFn, world: World) -> dict[str, Any]:
    kind = draw(st.sampled_from(["alarm", "job", "build"]))
    if kind == "alarm":
        event = alarm_event(world.model_endpoint, event_id=str(uuid.uuid4()), description=draw(contexts(world)))
    elif kind == "job":
        event = _job_event()
    else:  # a build's failure; none of these executions is a retrain's (the cooldown names none)
        execution = f"arn:aws:sagemaker:eu-west-1:{base.ACCOUNT}:pipeline/{world.settings.pipeline_name}/execution/x1"
        event = base.pipeline_event(world, execution, status=draw(st.sampled_from(["Failed", "Stopped", "Succeeded"])))
    paths = {"alarm": ALARM_PATHS, "job": JOB_PATHS, "build": PIPELINE_PATHS}[kind]
    return mutate(draw, copy.deepcopy(event), paths, min_edits=1)


def _items(world: World) -> list[dict]:
    return world.dynamodb.scan(TableName=world.settings.table_name)["Items"]


# Event ids that got a decision in this session: a mutated id can repeat one (a cut or short unicode id),
# and Powertools then answers from the first one's idempotency record, as for a redelivery.
_DECIDED: set[str] = set()


def _check(world: World, event: Any) -> None:
    before_executions, before_items = len(world.executions()), len(_items(world))
    event_id = event.get("id") if isinstance(event, dict) else None
    repeated = isinstance(event_id, str) and event_id in _DECIDED
    try:
        decision = handler.lambda_handler(event, LambdaContextStandIn(function_name="mlops-dev-model-retrain"))
    except handler.UnsupportedEvent as exc:
        message = str(exc)
        assert message.startswith(("malformed ", "unsupported detail-type", "expected an EventBridge event")), message
        if message.startswith("malformed "):
            assert ": " in message.split(" event: ", 1)[1]  # '<field path>: <problem>'
        # Nothing half-done: no retrain, no notification, no cooldown, no idempotency record kept.
        assert len(world.executions()) == before_executions
        assert world.notifications() == []
        assert len(_items(world)) == before_items
        return
    assert decision["action"] in DECISIONS
    _DECIDED.add(event["id"])
    if repeated:  # answered from the record: nothing more happens
        assert len(world.executions()) == before_executions and world.notifications() == []
        return
    started = len(world.executions()) - before_executions
    assert started == (1 if decision["action"] == "started" else 0)
    notes = world.notifications()
    assert [n["action"] for n in notes] == ([decision["action"]] if decision["action"] in NOTIFIED else [])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_mutated_event_gets_a_decision_or_a_named_error_and_leaves_nothing_half_done(
    lambda_env: World, data: st.DataObject
) -> None:
    event = data.draw(mutated_events(lambda_env))
    _check(lambda_env, event)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=json_values | st.dictionaries(st.sampled_from(["detail-type", "source", "id", "detail"]), json_values))
def test_arbitrary_json_is_a_named_error_and_leaves_nothing(lambda_env: World, event: Any) -> None:
    _check(lambda_env, event)


def test_after_a_refused_event_the_corrected_one_is_processed(lambda_env: World) -> None:
    world = lambda_env
    event = alarm_event(world.model_endpoint, description=context(world))
    broken = copy.deepcopy(event)
    broken["detail"]["state"]["value"] = "PANIC"
    with pytest.raises(handler.UnsupportedEvent, match=r"detail\.state\.value"):
        handler.lambda_handler(broken, LambdaContextStandIn(function_name="mlops-dev-model-retrain"))
    # The same event id, now readable (a fixed rule re-sending it): not answered from a stale record.
    assert (
        handler.lambda_handler(
            event, LambdaContextStandIn(function_name="mlops-dev-model-retrain", aws_request_id="request-2")
        )["action"]
        == "started"
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda e: e["detail"]["state"].update(reason="x" * 1024),
            r"detail\.state\.reason: String should have at most 1023",
        ),
        (
            lambda e: e["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"].update(
                Endpoint="../other-account"
            ),
            r"detail: Value error, configuration\.metrics: the Endpoint dimension is not a SageMaker endpoint name",
        ),
        (
            lambda e: e["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"].update(
                Endpoint="e" * 64
            ),
            r"the Endpoint dimension is not a SageMaker endpoint name",
        ),
        (
            lambda e: e["detail"]["configuration"].update(
                description=e["detail"]["configuration"]["description"] + " " * 1024
            ),
            r"detail\.configuration\.description: String should have at most 1024",
        ),
    ],
    ids=["reason over CloudWatch's 1023", "endpoint not a name", "endpoint too long", "description over 1024"],
)
def test_values_aws_would_never_send_are_refused_by_field(lambda_env: World, edit, message: str) -> None:
    event = alarm_event(lambda_env.model_endpoint, description=context(lambda_env))
    edit(event)
    with pytest.raises(handler.UnsupportedEvent, match=message):
        handler.lambda_handler(event, LambdaContextStandIn(function_name="mlops-dev-model-retrain"))
    assert lambda_env.notifications() == [] and _items(lambda_env) == []


@pytest.mark.parametrize(
    "bucket",
    ["a b", "\u00e9t\u00e9", "b" * 256, "arn:aws:s3:::not-an-access-point"],
    ids=["space", "unicode", "long", "arn"],
)
def test_a_context_naming_a_bucket_s3_cannot_have_still_retrains_and_says_the_folder_was_not_listed(
    lambda_env: World, bucket: str
) -> None:
    # Regression: botocore refuses such a name before sending (ParamValidationError, not a ClientError); it
    # escaped the listing, and the alarm got neither a retrain nor a notification, only an unnamed error.
    world = lambda_env
    reports = f"s3://{bucket}/reports/"
    description = json.dumps(json.loads(context(world)) | {"reports": reports})
    decision = handler.lambda_handler(
        alarm_event(world.model_endpoint, description=description),
        LambdaContextStandIn(function_name="mlops-dev-model-retrain"),
    )
    assert decision["action"] == "started" and len(world.executions()) == 1
    assert f"violations {reports} (not listed: not an S3 bucket name)" in decision["reason"]
    assert f"model {world.package_arn}" in decision["reason"]  # the rest of the context is kept
    assert [n["action"] for n in world.notifications()] == ["started"]


def test_a_processing_job_status_outside_sagemakers_is_refused_by_field(lambda_env: World) -> None:
    event = _job_event()
    event["detail"]["ProcessingJobStatus"] = "Failed" * 40_000  # was 'ignored' with a 240 KB reason it could not store
    with pytest.raises(handler.UnsupportedEvent, match=r"detail\.ProcessingJobStatus: Input should be 'InProgress'"):
        handler.lambda_handler(event, LambdaContextStandIn(function_name="mlops-dev-model-retrain"))


# --- the function's settings (environment variables, read once at cold start) ----------------------------

_ENV = {
    "PIPELINE_NAME": "mlops-dev-model-build",
    "TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:retrain",
    "TABLE_NAME": "mlops-dev-retrain",
    "COOLDOWN_HOURS": "24",
    "INPUT_DATA_URI": "s3://bucket/data/",
}


@settings(max_examples=200, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(_ENV)),
        st.none() | st.text(max_size=30) | st.sampled_from(["0", "-1", "1e9", "nan", "inf", "x" * 5000, "http://x"]),
        max_size=3,
    )
)
def test_any_environment_gives_settings_or_an_error_naming_the_variable(changes: dict) -> None:
    from model_retrain.events import Settings
    from pydantic import ValidationError

    env = {**_ENV, **{k: v for k, v in changes.items() if v is not None}}
    for name in [k for k, v in changes.items() if v is None]:
        env.pop(name)
    try:
        parsed = Settings.model_validate(env)
    except ValidationError as exc:
        named = {str(error["loc"][0]) for error in exc.errors()}
        assert named and named <= set(changes), (named, changes)  # only what was changed is blamed
    else:
        assert 0 < parsed.cooldown_hours <= 24 * 90 and parsed.pipeline_name and parsed.table_name
