"""Property tests of the deploy functions' input: whatever arrives, a decision or a named error, nothing half-done.

The trigger's events are generated from the shape EventBridge delivers ("SageMaker Model Package
State Change") by dropping keys, swapping in values of other JSON types, unicode, values up to
EventBridge's 256 KB and strings cut short; and from arbitrary JSON. Each goes through the Lambda entry
point (Powertools' parser and idempotency included) against the moto server of ``deploy_world.py``,
and the test checks what is left behind: a refused event starts no execution, notifies nobody and
leaves no idempotency record, so the corrected event is processed when it comes. The state machine's
task payloads get the same treatment through the tasks function's parser.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_deploy import handler

from tests.integration.lambdas.conftest import LambdaContextStandIn
from tests.integration.lambdas.deploy_world import GROUP, STATE_MACHINE, World, make_task, package_event
from tests.integration.lambdas.mutations import json_values, mutate

DECISIONS = {"started", "duplicate", "ignored", "nothing_to_do"}
REFUSALS = ("malformed ", "unsupported detail-type", "expected an EventBridge event", "expected a task")

EVENT_PATHS = [
    ("id",),
    ("source",),
    ("detail-type",),
    ("account",),
    ("time",),
    ("region",),
    ("resources",),
    ("detail",),
    ("detail", "ModelPackageGroupName"),
    ("detail", "ModelPackageVersion"),
    ("detail", "ModelPackageArn"),
    ("detail", "ModelApprovalStatus"),
]
TASK_PATHS = [
    ("task",),
    ("plan",),
    ("plan", "deploy_id"),
    ("plan", "version"),
    ("plan", "version", "arn"),
    ("plan", "version", "number"),
    ("plan", "reason"),
    ("plan", "stages"),
    ("stage",),
    ("stage", "name"),
    ("execution_arn",),
    ("target",),
    ("restoring",),
]


@pytest.fixture
def trigger(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The trigger's Lambda entry point configured for the world, as the deploy stack configures it."""
    for key, value in {
        "TOPIC_ARN": world.settings.topic_arn,
        "TABLE_NAME": world.settings.table_name,
        "MODEL_PACKAGE_GROUP": GROUP,
        "STATE_MACHINE_ARN": STATE_MACHINE,
        "STAGES": json.dumps([s.model_dump() for s in world.settings.stages]),
    }.items():
        monkeypatch.setenv(key, value)
    caches = (handler.settings, handler.deployer, handler.idempotency)
    for cached in caches:
        cached.cache_clear()
    yield world
    for cached in caches:
        cached.cache_clear()


@st.composite
def mutated_events(draw: st.DrawFn, world: World) -> dict[str, Any]:
    version = world.versions[draw(st.integers(0, 1))]
    status = draw(st.sampled_from(["Approved", "Rejected", "PendingManualApproval"]))
    event = copy.deepcopy(package_event(version, status, event_id=f"event-{draw(st.uuids())}"))
    return mutate(draw, event, EVENT_PATHS)


def _items(world: World) -> list[dict]:
    return world.client("dynamodb").scan(TableName=world.settings.table_name)["Items"]


def _executions(world: World) -> int:
    return len(world.client("stepfunctions").list_executions(stateMachineArn=STATE_MACHINE)["executions"])


# Event ids that got a decision in this session: a mutated id can repeat one (a cut id), and Powertools
# then answers from the first one's idempotency record, as for a redelivery.
_DECIDED: set[str] = set()


def _check(world: World, event: Any) -> None:
    before_executions, before_items = _executions(world), len(_items(world))
    event_id = event.get("id") if isinstance(event, dict) else None
    repeated = isinstance(event_id, str) and event_id in _DECIDED
    try:
        decision = handler.trigger_handler(event, LambdaContextStandIn(function_name="mlops-dev-deploy-trigger"))
    except handler.UnsupportedEvent as exc:
        message = str(exc)
        hypothesis.event(f"refused: {message.split(' ', 2)[:2]}")  # the distribution: --hypothesis-show-statistics
        assert message.startswith(REFUSALS), message
        if message.startswith("malformed "):
            assert ": " in message.split(" change: ", 1)[1]  # '<field path>: <problem>'
        # Nothing half-done: no deploy, no notification, no idempotency record kept.
        assert _executions(world) == before_executions
        assert world.notifications() == []
        assert len(_items(world)) == before_items
        return
    hypothesis.event(f"decided: {decision['action']}")
    assert decision["action"] in DECISIONS, decision
    _DECIDED.add(event["id"])
    started = _executions(world) - before_executions
    assert started == (1 if decision["action"] == "started" and not repeated else 0)
    # The trigger speaks only when a rejection leaves nothing to deploy (the executions announce themselves).
    subjects = [n["subject"] for n in world.notifications()]
    if repeated or decision["action"] != "nothing_to_do":
        assert subjects == []
    else:
        assert len(subjects) == 1 and subjects[0].startswith("Rejected v")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_mutated_event_gets_a_decision_or_a_named_error_and_leaves_nothing_half_done(
    trigger: World, data: st.DataObject
) -> None:
    _check(trigger, data.draw(mutated_events(trigger)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=json_values | st.dictionaries(st.sampled_from(["detail-type", "source", "id", "detail"]), json_values))
def test_arbitrary_json_is_a_named_error_and_leaves_nothing(trigger: World, event: Any) -> None:
    _check(trigger, event)


def test_after_a_refused_event_the_corrected_one_is_processed(trigger: World) -> None:
    event = package_event(trigger.versions[1], "Approved", event_id="event-fixed")
    broken = copy.deepcopy(event)
    broken["detail"]["ModelPackageVersion"] = "two"
    with pytest.raises(handler.UnsupportedEvent, match=r"detail\.ModelPackageVersion"):
        handler.trigger_handler(broken, LambdaContextStandIn(function_name="mlops-dev-deploy-trigger"))
    # The same event id, now readable: not answered from a stale record.
    decision = handler.trigger_handler(
        event, LambdaContextStandIn(function_name="mlops-dev-deploy-trigger", aws_request_id="request-2")
    )
    assert decision["action"] == "started" and _executions(trigger) == 1


@st.composite
def mutated_tasks(draw: st.DrawFn, world: World) -> dict[str, Any]:
    name = draw(st.sampled_from(["turn", "update", "status", "verify", "smoke", "approval", "cleanup", "notify"]))
    task = make_task(world, name, world.versions[draw(st.integers(0, 1))])
    return mutate(draw, json.loads(task.model_dump_json()), TASK_PATHS)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_task_payload_is_a_task_or_an_error_naming_the_field(world: World, data: st.DataObject) -> None:
    payload = data.draw(mutated_tasks(world) | json_values)
    try:
        task = handler.parse_task(payload)
    except handler.UnsupportedEvent as exc:
        message = str(exc)
        assert message.startswith(("malformed deploy task: ", "expected a task object")), message
        if message.startswith("malformed "):
            assert ": " in message.removeprefix("malformed deploy task: ")
        return
    # What parsed is what was sent: the payload round-trips through the model (no field invented or lost).
    assert json.loads(task.model_dump_json(exclude_unset=True)) == payload
