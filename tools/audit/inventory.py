"""Sections 1 and 2: where the templates came from, and every resource in them."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from tools.audit.assembly import Environment
from tools.audit.document import Code, Section


@dataclass(frozen=True)
class Provenance:
    """What produced the assembly: the commit and the versions of the tools."""

    commit: str
    tool_versions: dict[str, str]

    def tool_versions_by_tool(self) -> dict[str, str]:
        """The scanners' versions keyed as the findings name their tool."""
        return {tool: self.tool_versions.get(tool, "unknown") for tool in ("cdk-nag", "checkov", "cfn-lint")}


def provenance_section(env: Environment, provenance: Provenance) -> Section:
    """Section 1: commit, tool versions, template hashes and the time of synth."""
    section = Section("provenance", "1. Provenance")
    manifest = env.directory / "manifest.json"
    synth_time = datetime.fromtimestamp(manifest.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    facts = section.table("fact", "value")
    facts.add("commit", Code(provenance.commit))
    facts.add("environment", f"{env.name} (account {env.account or '?'}, region {env.region or '?'})")
    facts.add("synth time", f"{synth_time} (when {manifest} was written)")
    for tool, version in provenance.tool_versions.items():
        facts.add(tool, Code(version))
    hashes = section.table("stack", "CloudFormation name", "template", "SHA-256")
    for stack in env.stacks:
        hashes.add(stack.name, stack.stack_name, Code(str(stack.template_file)), Code(stack.sha256))
    if env.pipeline_definition_file is not None:
        digest = hashlib.sha256(env.pipeline_definition_file.read_bytes()).hexdigest()
        hashes.add("SageMaker Pipeline", "(definition)", Code(str(env.pipeline_definition_file)), Code(digest))
    else:
        section.para(
            f"No pipeline definition at cdk.out/pipelines/{env.name}.json (run `make pipeline-definition`): "
            "the jobs' volumes and outputs are not audited.",
            "warn",
        )
    return section


def inventory_section(env: Environment) -> tuple[Section, dict[str, dict[str, str]]]:
    """Section 2: every resource by stack and type, counts first.

    Returns:
        The section, and the resources keyed by stack/logical id (type and path) for comparisons.
    """
    section = Section("inventory", "2. Inventory")
    resources = list(env.resources())
    by_type = Counter(r.type for r in resources)
    section.para(
        f"{len(resources)} resources in {len(env.stacks)} stacks, {len(by_type)} types. "
        + "; ".join(f"{s.name}: {len(s.resources)}" for s in env.stacks)
        + "."
    )
    counts = section.table("type", "count")
    for type_, count in sorted(by_type.items(), key=lambda item: (-item[1], item[0])):
        counts.add(Code(type_), count)
    for stack in env.stacks:
        section.heading(f"{stack.name} ({stack.stack_name}): {len(stack.resources)} resources")
        table = section.table("type", "logical id", "construct path")
        for resource in sorted(stack.resources, key=lambda r: (r.type, r.path)):
            table.add(Code(resource.type), Code(resource.logical_id), Code(resource.path))
    data = {r.key: {"type": r.type, "path": r.path} for r in resources}
    return section, data
