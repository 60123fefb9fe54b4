"""Section 3: the architecture as the templates describe it, laid out by Graphviz into an inline SVG.

Every resource is a node, grouped by stack; an arrow goes from a resource to each resource
its properties refer to (Ref, Fn::GetAtt, Fn::Sub, and cross-stack imports). Nothing is
drawn by hand, so the picture cannot drift from the templates.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from tools.audit.assembly import Environment, Resource
from tools.audit.document import Diagram, Section
from tools.audit.intrinsics import Resolver, short_path

# Fill colours by service family, so that keys, storage, network and IAM stand out.
_COLOURS = {
    "KMS": "#f6d6d6",
    "S3": "#d8eed8",
    "ECR": "#d8eed8",
    "Logs": "#e9e4f5",
    "EC2": "#d6e6f6",
    "IAM": "#fbe7c6",
    "SageMaker": "#d4f0ef",
    "Lambda": "#fde2cf",
    "SSM": "#eeeeee",
    "CodeBuild": "#e3ecd0",
    "CodePipeline": "#e3ecd0",
    "CodeCommit": "#e3ecd0",
    "SQS": "#f3dff0",
    "SNS": "#f3dff0",
    "Events": "#f3dff0",
}
_SKIP = {"AWS::CDK::Metadata"}


class DiagramError(Exception):
    """Graphviz is missing or failed."""


def _node(resource: Resource) -> str:
    return f"{resource.stack}__{resource.logical_id}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "/").replace('"', '\\"').replace("\n", "\\n") + '"'


def edges(env: Environment) -> set[tuple[Resource, Resource]]:
    """(from, to) pairs: ``from`` refers to ``to`` in its properties (or depends on it explicitly)."""
    resolver = Resolver(env)
    out = set()
    for resource in env.resources():
        if resource.type in _SKIP:
            continue
        for target in resolver.targets(resource.stack, resource.properties):
            if target.key != resource.key and target.type not in _SKIP:
                out.add((resource, target))
    return out


def to_dot(env: Environment) -> str:
    """The Graphviz source: one cluster per stack, one node per resource, one edge per reference."""
    lines = [
        "digraph architecture {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=20, nodesep=0.12, ranksep=0.9, newrank=true];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=13, margin="0.08,0.03"];',
        '  edge [color="#57606a80", arrowsize=0.5];',
    ]
    for index, stack in enumerate(env.stacks):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f'    label={_quote(f"{stack.name} ({stack.stack_name})")}; style="rounded"; color="#8c959f";')
        for resource in stack.resources:
            if resource.type in _SKIP:
                continue
            service = resource.type.split("::")[1] if resource.type.count("::") >= 2 else "Custom"
            label = f"{short_path(resource).removeprefix(stack.name + '/')}\n{resource.type.removeprefix('AWS::')}"
            colour = _COLOURS.get(service, "#ffffff")
            lines.append(
                f"    {_quote(_node(resource))} [label={_quote(label)}, fillcolor={_quote(colour)}, "
                f"tooltip={_quote(resource.path)}];"
            )
        lines.append("  }")
    for source, target in sorted(edges(env), key=lambda e: (e[0].key, e[1].key)):
        lines.append(f"  {_quote(_node(source))} -> {_quote(_node(target))};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_source: str) -> str:
    """Lay out with ``dot`` and return SVG markup ready to inline in HTML.

    Raises:
        DiagramError: ``dot`` is not installed or fails.
    """
    binary = shutil.which("dot")
    if binary is None:
        raise DiagramError("Graphviz's `dot` is not installed (Debian: apt-get install graphviz)")
    result = subprocess.run(
        [binary, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise DiagramError(f"dot failed: {result.stderr.strip()[:500]}")
    svg = result.stdout
    # Inline SVG needs no prolog; the DOCTYPE would name an external DTD.
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(
        r'<svg width="[^"]*" height="[^"]*"', '<svg role="img" aria-label="architecture diagram"', svg, count=1
    )
    return svg.strip()


def diagram_section(env: Environment) -> Section:
    """Section 3."""
    section = Section("architecture", "3. Architecture")
    pairs = edges(env)
    count = sum(1 for r in env.resources() if r.type not in _SKIP)
    caption = (
        f"{count} resources in {len(env.stacks)} stacks and the {len(pairs)} references between them, generated "
        "from the templates: an arrow points from a resource to what it refers to. Hover a box for its construct path."
    )
    references = sorted(f"{short_path(source)} -> {short_path(target)}" for source, target in pairs)
    section.blocks.append(Diagram(render_svg(to_dot(env)), caption, references))
    return section
