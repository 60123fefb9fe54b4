"""Summarize a synthesized cloud assembly: environments, stacks, resources, acknowledged findings.

    python -m tools.assembly_summary cdk.out

Reads only files in ``cdk.out``; it imports no CDK code, so it is quick and shows
exactly what would be deployed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StackSummary:
    """What one synthesized template holds."""

    name: str
    path: str = ""  # the stack's construct path, e.g. dev/Foundation
    resources: Counter[str] = field(default_factory=Counter)
    nag_acknowledged: int = 0
    checkov_skipped: int = 0
    template: dict = field(default_factory=dict)


def read_assembly(outdir: Path) -> dict[str, list[StackSummary]]:
    """Map each environment (nested assembly) to its stacks' summaries.

    Raises:
        FileNotFoundError: ``outdir`` holds no cloud assembly.
    """
    manifest = json.loads((outdir / "manifest.json").read_text(encoding="utf-8"))
    acknowledged = acknowledged_findings(outdir)
    environments: dict[str, list[StackSummary]] = {}
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "cdk:cloud-assembly":
            continue
        nested = outdir / artifact["properties"]["directoryName"]
        env_name = artifact["properties"].get("displayName", nested.name.removeprefix("assembly-"))
        environments[env_name] = _read_stacks(nested)
        for stack in environments[env_name]:
            stack.nag_acknowledged = acknowledged[stack.path]
    return dict(sorted(environments.items(), key=lambda item: _ORDER.get(item[0], 99)))


def acknowledged_findings(outdir: Path) -> Counter[str]:
    """Findings the cdk-nag packs reported as acknowledged, by stack path (``dev/Foundation``).

    Counted from what the packs themselves report (``validation-report.json``), not from template
    metadata, which also carries CDK's own validation acknowledgments.
    """
    report_file = outdir / "validation-report.json"
    counts: Counter[str] = Counter()
    if not report_file.is_file():
        return counts
    for plugin in json.loads(report_file.read_text(encoding="utf-8")).get("pluginReports", []):
        for finding in plugin.get("suppressedViolations", []):
            for construct in finding.get("violatingConstructs", []):
                counts["/".join(construct["constructPath"].split("/")[:2])] += 1
    return counts


_ORDER = {"dev": 0, "staging": 1, "prod": 2}


def _read_stacks(assembly: Path) -> list[StackSummary]:
    manifest = json.loads((assembly / "manifest.json").read_text(encoding="utf-8"))
    stacks = []
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template = json.loads((assembly / artifact["properties"]["templateFile"]).read_text(encoding="utf-8"))
        summary = StackSummary(
            name=artifact["properties"].get("stackName", artifact["displayName"]),
            path=artifact.get("displayName", ""),
            template=template,
        )
        for resource in template.get("Resources", {}).values():
            summary.resources[resource["Type"]] += 1
            summary.checkov_skipped += len(resource.get("Metadata", {}).get("checkov", {}).get("skip", []))
        stacks.append(summary)
    return sorted(stacks, key=lambda s: s.name)


def render(environments: dict[str, list[StackSummary]]) -> str:
    """The human-readable summary."""
    lines = []
    total_resources = total_acks = total_skips = 0
    for env_name, stacks in environments.items():
        lines.append(f"environment {env_name}")
        for stack in stacks:
            count = sum(stack.resources.values())
            total_resources += count
            total_acks += stack.nag_acknowledged
            total_skips += stack.checkov_skipped
            top = ", ".join(f"{n} {t.removeprefix('AWS::')}" for t, n in stack.resources.most_common(4))
            lines.append(
                f"  {stack.name:<28} {count:>4} resources  "
                f"{stack.nag_acknowledged:>3} cdk-nag acknowledged  {stack.checkov_skipped:>2} checkov skips"
            )
            lines.append(f"      most: {top}")
            lines.extend(f"      {line}" for line in _details(stack))
    lines.append(
        f"total: {len(environments)} environments, {sum(len(s) for s in environments.values())} stacks, "
        f"{total_resources} resources; {total_acks} acknowledged cdk-nag findings, {total_skips} checkov skips, "
        "0 unacknowledged (the gate fails synth otherwise)"
    )
    return "\n".join(lines)


def _details(stack: StackSummary) -> list[str]:
    """Capability-specific lines (domain and users, pipelines) where the stack has them."""
    out = []
    resources = stack.template.get("Resources", {})
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SageMaker::Domain":
            out.append(
                f"domain {props.get('DomainName')}: {props.get('AppNetworkAccessType')}, {props.get('AuthMode')}"
            )
        elif resource["Type"] == "AWS::SageMaker::UserProfile":
            persona = next(
                (t["Value"] for t in props.get("Tags", []) if t.get("Key") == "persona"),
                "?",
            )
            out.append(f"user {props.get('UserProfileName')} ({persona})")
        elif resource["Type"] == "AWS::CodePipeline::Pipeline":
            stages = [s["Name"] for s in props.get("Stages", [])]
            out.append(f"pipeline {props.get('Name')}: {' -> '.join(stages)}")
    return sorted(out)


def main(argv: list[str]) -> int:
    outdir = Path(argv[1] if len(argv) > 1 else "cdk.out")
    try:
        environments = read_assembly(outdir)
    except FileNotFoundError:
        print(f"error: {outdir} holds no cloud assembly; run `make synth` first", file=sys.stderr)
        return 2
    print(render(environments))
    for path in sorted((outdir / "pipelines").glob("*.json"), key=lambda p: _ORDER.get(p.stem, 99)):
        definition = json.loads(path.read_text(encoding="utf-8"))
        steps = " -> ".join(s["Name"] for s in definition.get("Steps", []))
        print(f"sagemaker pipeline {path.stem}: {steps}  ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
