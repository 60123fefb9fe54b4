"""Runs a synthesized Step Functions definition on this machine, its Lambda tasks calling handlers in-process.

moto stores state machines but runs Lambda tasks only in Docker, so ``make demo`` and the deploy's
flow tests run the deploy state machine *as synthesized* (``cdk.out``) with this interpreter. It
implements the part of the Amazon States Language that definition uses, with Step Functions'
semantics, and refuses anything else by name rather than guessing:

- states: Pass, Task, Choice, Wait, Map (inline), Succeed, Fail;
- Task resources: a Lambda function ARN (payload-only invocation) and
  ``arn:<partition>:states:::lambda:invoke.waitForTaskToken`` with ``TimeoutSeconds``;
- ``Parameters`` (``key.$`` paths), ``ResultPath`` (``null`` discards), ``ItemsPath``,
  ``ItemSelector``, ``Catch`` (``States.ALL`` or the error's name), ``Retry`` on the Lambda
  service errors (never raised here: a handler's exception is the task's error);
- Choice rules ``StringEquals`` and ``BooleanEquals`` on a ``Variable``, and ``Default``;
- paths ``$``, ``$.a.b`` and the context ``$$.Execution.Id``, ``$$.StateMachine.Id``,
  ``$$.Task.Token``, ``$$.Map.Item.Value``.

Waits are scaled (``wait_scale``) so that a demo's bake and polling take seconds, not minutes.
A task waiting for its token blocks until ``send_task_success``/``send_task_failure`` (the methods
``pipelines.approve`` calls on a Step Functions client) or its timeout.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any]], Any]


class StatesError(Exception):
    """A state failed: ``error`` is what ``Catch`` matches on, ``cause`` the detail."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class Unsupported(ValueError):
    """The definition uses something this interpreter does not implement."""


def definition_from_template(template: dict[str, Any], logical_id: str, functions: dict[str, str]) -> dict[str, Any]:
    """The definition of a synthesized ``AWS::StepFunctions::StateMachine``, references resolved.

    Args:
        functions: logical id of each ``AWS::Lambda::Function`` the definition refers to -> the ARN to put.
    """
    body = template["Resources"][logical_id]["Properties"]["DefinitionString"]
    if isinstance(body, str):
        return json.loads(body)
    _, parts = body["Fn::Join"]
    text = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        elif part == {"Ref": "AWS::Partition"}:
            text.append("aws")
        elif "Fn::GetAtt" in part and part["Fn::GetAtt"][1] == "Arn" and part["Fn::GetAtt"][0] in functions:
            text.append(functions[part["Fn::GetAtt"][0]])
        else:
            raise Unsupported(f"cannot resolve {part} in the definition")
    return json.loads("".join(text))


def _get(document: Any, path: str, context: dict[str, Any]) -> Any:
    if path == "$":
        return document
    root, rest = (context, path[3:]) if path.startswith("$$.") else (document, path[2:])
    if not path.startswith(("$.", "$$.")):
        raise Unsupported(f"path {path!r}")
    value = root
    for key in rest.split("."):
        if not isinstance(value, dict) or key not in value:
            raise StatesError("States.Runtime", f"the path {path!r} does not exist in the input")
        value = value[key]
    return value


def _parameters(template: Any, document: Any, context: dict[str, Any]) -> Any:
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _get(document, value, context)
            else:
                out[key] = _parameters(value, document, context)
        return out
    if isinstance(template, list):
        return [_parameters(v, document, context) for v in template]
    return template


def _set(document: Any, path: str | None, result: Any) -> Any:
    if path is None:
        return document
    if path == "$":
        return result
    if not path.startswith("$."):
        raise Unsupported(f"ResultPath {path!r}")
    out = copy.deepcopy(document) if isinstance(document, dict) else {}
    node = out
    keys = path[2:].split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = result
    return out


@dataclass
class Execution:
    """One run: its ARN, status, output or error, and the states it went through (for the timeline)."""

    arn: str
    status: str = "RUNNING"
    output: Any = None
    error: str = ""
    cause: str = ""
    history: list[tuple[float, str]] = field(default_factory=list)
    caught: list[tuple[str, str, str]] = field(default_factory=list)  # (state, error, cause) a Catch handled


@dataclass
class _Waiting:
    event: threading.Event
    outcome: tuple[str, Any] | None = None


class LocalStateMachine:
    """One state machine definition; ``start`` runs an execution to its end (in the calling thread)."""

    def __init__(
        self,
        definition: dict[str, Any],
        *,
        arn: str,
        handlers: dict[str, Handler],
        wait_scale: float = 1.0,
        on_state: Callable[[str, str], None] | None = None,
    ) -> None:
        """``handlers``: function ARN -> the handler Lambda would invoke with the payload."""
        self.definition, self.arn, self.handlers = definition, arn, handlers
        self.wait_scale, self.on_state = wait_scale, on_state
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()

    # --- what pipelines.approve calls, as on a boto3 Step Functions client --------------------------

    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:
        self._resolve(taskToken, ("success", json.loads(output)))
        return {}

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        self._resolve(taskToken, ("failure", (error, cause)))
        return {}

    def _resolve(self, token: str, outcome: tuple[str, Any]) -> None:
        with self._lock:
            waiting = self._waiting.get(token)
        if waiting is None:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "TaskDoesNotExist", "Message": "no task waits with this token"}}, "Send"
            )
        waiting.outcome = outcome
        waiting.event.set()

    def waiting_tokens(self) -> list[str]:
        with self._lock:
            return list(self._waiting)

    # --- running ----------------------------------------------------------------------------------

    def start(self, document: Any, *, name: str | None = None) -> Execution:
        execution = Execution(arn=self.arn.replace(":stateMachine:", ":execution:") + f":{name or uuid.uuid4()}")
        context = {"Execution": {"Id": execution.arn, "Input": document}, "StateMachine": {"Id": self.arn}}
        try:
            execution.output = self._run(self.definition, document, context, execution)
            execution.status = "SUCCEEDED"
        except StatesError as exc:
            execution.status, execution.error, execution.cause = "FAILED", exc.error, exc.cause
        return execution

    def _run(self, machine: dict[str, Any], document: Any, context: dict[str, Any], execution: Execution) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            execution.history.append((time.time(), name))
            if self.on_state:
                self.on_state(name, state["Type"])
            kind = state["Type"]
            try:
                if kind == "Pass":
                    result = _parameters(state["Parameters"], document, context) if "Parameters" in state else document
                    document = _set(document, state.get("ResultPath", "$"), result)
                elif kind == "Task":
                    document = _set(document, state.get("ResultPath", "$"), self._task(state, document, context))
                elif kind == "Choice":
                    name = self._choose(state, document, context)
                    continue
                elif kind == "Wait":
                    time.sleep(float(state["Seconds"]) * self.wait_scale)
                elif kind == "Map":
                    items = _get(document, state.get("ItemsPath", "$"), context)
                    results = []
                    for item in items:  # MaxConcurrency 1: in order, one at a time
                        item_context = {**context, "Map": {"Item": {"Value": item}}}
                        selected = _parameters(state.get("ItemSelector", {}), document, item_context) or item
                        results.append(self._run(state["ItemProcessor"], selected, item_context, execution))
                    document = _set(document, state.get("ResultPath", "$"), results)
                elif kind == "Succeed":
                    return document
                elif kind == "Fail":
                    raise StatesError(state.get("Error", "States.Fail"), state.get("Cause", ""))
                else:
                    raise Unsupported(f"state type {kind}")
            except StatesError as exc:
                catcher = next(
                    (
                        c
                        for c in state.get("Catch", [])
                        if "States.ALL" in c["ErrorEquals"] or exc.error in c["ErrorEquals"]
                    ),
                    None,
                )
                if catcher is None:
                    raise
                execution.caught.append((name, exc.error, exc.cause))
                document = _set(document, catcher.get("ResultPath", "$"), {"Error": exc.error, "Cause": exc.cause})
                name = catcher["Next"]
                continue
            if state.get("End"):
                return document
            name = state["Next"]

    def _choose(self, state: dict[str, Any], document: Any, context: dict[str, Any]) -> str:
        for rule in state["Choices"]:
            value = _get(document, rule["Variable"], context)
            if "StringEquals" in rule:
                matched = value == rule["StringEquals"]
            elif "BooleanEquals" in rule:
                matched = value is rule["BooleanEquals"]
            else:
                raise Unsupported(f"choice rule {sorted(rule)}")
            if matched:
                return str(rule["Next"])
        if "Default" not in state:
            raise StatesError("States.NoChoiceMatched", f"no rule of {state} matched")
        return str(state["Default"])

    def _task(self, state: dict[str, Any], document: Any, context: dict[str, Any]) -> Any:
        resource = state["Resource"]
        if resource.endswith(":states:::lambda:invoke.waitForTaskToken"):
            token = uuid.uuid4().hex * 4
            parameters = _parameters(state["Parameters"], document, {**context, "Task": {"Token": token}})
            waiting = _Waiting(threading.Event())
            with self._lock:
                self._waiting[token] = waiting
            try:
                self._invoke(parameters["FunctionName"], parameters["Payload"])
                if not waiting.event.wait(float(state.get("TimeoutSeconds", 99_999_999)) * self.wait_scale):
                    raise StatesError("States.Timeout", "the task token was not answered in time")
            finally:
                with self._lock:
                    self._waiting.pop(token, None)
            assert waiting.outcome is not None
            kind, value = waiting.outcome
            if kind == "failure":
                raise StatesError(*value)
            return value
        if ":states:::" in resource:
            raise Unsupported(f"task resource {resource}")
        return self._invoke(resource, _parameters(state.get("Parameters", {}), document, context))

    def _invoke(self, function_arn: str, payload: Any) -> Any:
        handler = self.handlers.get(function_arn)
        if handler is None:
            raise Unsupported(f"no local handler for {function_arn}")
        try:
            return json.loads(json.dumps(handler(payload), default=str))
        except StatesError:
            raise
        except Exception as exc:  # a handler's exception is the task's error, by its class name, as in Lambda
            cause = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__})
            raise StatesError(type(exc).__name__, cause) from exc
