"""Reading CloudFormation values: which resources a value refers to, and how to print it for a person."""

from __future__ import annotations

import json
import re
from typing import Any

from tools.audit.assembly import Environment, Resource

_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}")


def references(value: Any) -> set[str]:
    """The logical ids ``value`` refers to (Ref, Fn::GetAtt, Fn::Sub variables); pseudo-parameters excluded."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                if isinstance(text, str):
                    found.update(_SUB_VAR.findall(text))
                if isinstance(inner, list) and len(inner) > 1:
                    found.update(references(inner[1]))
            else:
                found.update(references(inner))
    elif isinstance(value, list):
        for item in value:
            found.update(references(item))
    return {f for f in found if not f.startswith("AWS::")}


def short_path(resource: Resource) -> str:
    """The construct path without its environment and the trailing ``/Resource``."""
    parts = resource.path.split("/")
    if len(parts) > 2:
        parts = parts[1:]
    if parts and parts[-1] in ("Resource", "Default"):
        parts = parts[:-1]
    return "/".join(parts)


class Resolver:
    """Turns values of one environment's templates into readable text, following cross-stack exports."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self._by_stack = {s.name: {r.logical_id: r for r in s.resources} for s in env.stacks}
        self._exports: dict[str, tuple[str, Any]] = {}
        for stack in env.stacks:
            for output in stack.template.get("Outputs", {}).values():
                name = output.get("Export", {}).get("Name")
                if isinstance(name, str):
                    self._exports[name] = (stack.name, output.get("Value"))

    def resource(self, stack: str, logical_id: str) -> Resource | None:
        """The resource with this logical id in ``stack``, if any."""
        return self._by_stack.get(stack, {}).get(logical_id)

    def target(self, stack: str, value: Any) -> Resource | None:
        """The single resource a Ref, GetAtt or import of an export points to, else None."""
        if isinstance(value, dict):
            if "Ref" in value and isinstance(value["Ref"], str):
                return self.resource(stack, value["Ref"])
            if "Fn::GetAtt" in value:
                inner = value["Fn::GetAtt"]
                logical = inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]
                return self.resource(stack, str(logical))
            if "Fn::ImportValue" in value and isinstance(value["Fn::ImportValue"], str):
                exported = self._exports.get(value["Fn::ImportValue"])
                if exported is not None:
                    return self.target(exported[0], exported[1])
        return None

    def targets(self, stack: str, value: Any) -> list[Resource]:
        """Every resource ``value`` refers to, in this stack or through exports of others."""
        found: dict[str, Resource] = {}
        for logical in sorted(references(value)):
            resource = self.resource(stack, logical)
            if resource is not None:
                found[resource.key] = resource
        for name in _imports(value):
            exported = self._exports.get(name)
            if exported is not None:
                for resource in self.targets(exported[0], exported[1]):
                    found[resource.key] = resource
        return list(found.values())

    def text(self, stack: str, value: Any) -> str:
        """A readable rendering: references become ``${construct path}``, joins are joined."""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)) or value is None:
            return json.dumps(value)
        if isinstance(value, list):
            return ", ".join(self.text(stack, v) for v in value)
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "Ref":
                resource = self.resource(stack, inner)
                return f"${{{short_path(resource) if resource else inner}}}"
            if key == "Fn::GetAtt":
                logical, attr = (inner if isinstance(inner, list) else str(inner).split(".", 1))[:2]
                resource = self.resource(stack, str(logical))
                return f"${{{short_path(resource) if resource else logical}.{attr}}}"
            if key == "Fn::Join" and isinstance(inner, list) and len(inner) == 2 and isinstance(inner[1], list):
                return str(inner[0]).join(self.text(stack, v) for v in inner[1])
            if key == "Fn::ImportValue":
                target = self.target(stack, value)
                return f"${{{short_path(target)}}}" if target else f"${{import {self.text(stack, inner)}}}"
            if key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                return str(text)
            if key == "Fn::Select" and isinstance(inner, list) and len(inner) == 2:
                return f"{self.text(stack, inner[1])}[{self.text(stack, inner[0])}]"
        return json.dumps(value, sort_keys=True)


def _imports(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Fn::ImportValue" and isinstance(inner, str):
                found.add(inner)
            else:
                found.update(_imports(inner))
    elif isinstance(value, list):
        for item in value:
            found.update(_imports(item))
    return found
