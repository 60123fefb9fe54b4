"""The synthesized cloud assembly as the audit reads it: environments, stacks, resources.

Only files in ``cdk.out`` are read; no CDK code is imported, so what is audited is
exactly what would be deployed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ORDER = {"dev": 0, "staging": 1, "prod": 2}


class AssemblyError(Exception):
    """The cloud assembly is missing or malformed; the message names the file."""


@dataclass(frozen=True, eq=False)
class Resource:
    """One CloudFormation resource of one stack (compared and hashed by identity: each is loaded once)."""

    stack: str
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any]
    depends_on: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """The construct path (``aws:cdk:path``), or ``<stack>/<logical id>`` for hand-written templates."""
        return str(self.metadata.get("aws:cdk:path") or f"{self.stack}/{self.logical_id}")

    @property
    def key(self) -> str:
        """Identifies the resource within an environment: stack and logical id."""
        return f"{self.stack}/{self.logical_id}"


@dataclass
class Stack:
    """One template: its display name (``dev/Foundation``), CloudFormation name, file and resources."""

    name: str
    stack_name: str
    template_file: Path
    template: dict[str, Any]
    resources: list[Resource] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        """The hash of the template file as written by synth."""
        return hashlib.sha256(self.template_file.read_bytes()).hexdigest()


@dataclass
class Environment:
    """One nested assembly (one Stage): its stacks, account, region and optional pipeline definition."""

    name: str
    directory: Path
    stacks: list[Stack]
    account: str = ""
    region: str = ""
    pipeline_definition: dict[str, Any] | None = None
    pipeline_definition_file: Path | None = None

    def resources(self) -> Iterator[Resource]:
        """Every resource of every stack, in stack order."""
        for stack in self.stacks:
            yield from stack.resources

    def by_logical_id(self, stack: str) -> dict[str, Resource]:
        """The resources of one stack keyed by logical id."""
        return {r.logical_id: r for s in self.stacks if s.name == stack for r in s.resources}


def load_template(stack: str, template: dict[str, Any]) -> list[Resource]:
    """The resources of one template.

    Raises:
        AssemblyError: a resource without a ``Type``.
    """
    resources = []
    for logical_id, body in sorted(template.get("Resources", {}).items()):
        if not isinstance(body, dict) or "Type" not in body:
            raise AssemblyError(f"{stack}: resource {logical_id} has no Type")
        depends = body.get("DependsOn", [])
        resources.append(
            Resource(
                stack=stack,
                logical_id=logical_id,
                type=body["Type"],
                properties=body.get("Properties", {}) or {},
                metadata=body.get("Metadata", {}) or {},
                depends_on=tuple([depends] if isinstance(depends, str) else depends),
            )
        )
    return resources


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AssemblyError(f"{path}: not found; run `make synth` first") from exc
    except json.JSONDecodeError as exc:
        raise AssemblyError(f"{path}: not valid JSON ({exc})") from exc


def load_assembly(outdir: Path) -> list[Environment]:
    """Every environment (nested assembly) of ``outdir``, dev/staging/prod first.

    An assembly without stages (a plain app) is one environment named after its directory.

    Raises:
        AssemblyError: no manifest, or a template that cannot be read.
    """
    manifest = _read_json(outdir / "manifest.json")
    environments = []
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") != "cdk:cloud-assembly":
            continue
        props = artifact["properties"]
        nested = outdir / props["directoryName"]
        name = props.get("displayName", nested.name.removeprefix("assembly-"))
        environments.append(_load_environment(name, nested, outdir))
    if not environments:
        environments.append(_load_environment(outdir.name, outdir, outdir))
    environments = [e for e in environments if e.stacks]
    if not environments:
        raise AssemblyError(f"{outdir}: the assembly holds no stacks")
    return sorted(environments, key=lambda e: (_ORDER.get(e.name, 99), e.name))


def _load_environment(name: str, directory: Path, outdir: Path) -> Environment:
    manifest = _read_json(directory / "manifest.json")
    stacks = []
    account = region = ""
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != "aws:cloudformation:stack":
            continue
        props = artifact["properties"]
        template_file = directory / props["templateFile"]
        template = _read_json(template_file)
        resources = template.get("Resources", {})
        if resources and not any("aws:cdk:path" in (r.get("Metadata") or {}) for r in resources.values()):
            # Without construct paths, cdk-nag's findings (keyed by path) cannot be matched to resources.
            raise AssemblyError(
                f"{template_file}: no resource carries aws:cdk:path metadata; synthesize with the CDK CLI "
                "(`make synth`), which adds it"
            )
        display = artifact.get("displayName", artifact_id)
        stack_label = display.split("/", 1)[1] if display.startswith(f"{name}/") else display
        stacks.append(
            Stack(
                name=stack_label,
                stack_name=props.get("stackName", artifact_id),
                template_file=template_file,
                template=template,
                resources=load_template(stack_label, template),
            )
        )
        env = artifact.get("environment", "")
        if env.startswith("aws://"):
            account, region = env.removeprefix("aws://").split("/", 1)
    definition_file = outdir / "pipelines" / f"{name}.json"
    definition = _read_json(definition_file) if definition_file.exists() else None
    return Environment(
        name=name,
        directory=directory,
        stacks=sorted(stacks, key=lambda s: s.name),
        account=account,
        region=region,
        pipeline_definition=definition,
        pipeline_definition_file=definition_file if definition is not None else None,
    )
