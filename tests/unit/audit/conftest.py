"""Small hand-made cloud assemblies, written to disk the way ``cdk synth`` lays them out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.audit.assembly import Environment, load_assembly


def resource(type_: str, path: str, properties: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    """A template resource with its construct path."""
    return {"Type": type_, "Properties": properties or {}, "Metadata": {"aws:cdk:path": path, **metadata}}


def write_assembly(
    outdir: Path,
    stacks: dict[str, dict[str, Any]],
    *,
    env: str = "dev",
    region: str = "eu-west-1",
    pipeline: dict[str, Any] | None = None,
) -> Environment:
    """Write one environment (a nested assembly) holding ``stacks`` (name -> Resources) and load it back."""
    nested = outdir / f"assembly-{env}"
    nested.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for name, resources in stacks.items():
        template_file = f"{env}{name}.template.json"
        (nested / template_file).write_text(json.dumps({"Resources": resources}, indent=1), encoding="utf-8")
        artifacts[f"{env}{name}"] = {
            "type": "aws:cloudformation:stack",
            "environment": f"aws://111111111111/{region}",
            "properties": {"templateFile": template_file, "stackName": f"test-{name.lower()}"},
            "displayName": f"{env}/{name}",
        }
    (nested / "manifest.json").write_text(json.dumps({"version": "55.0.0", "artifacts": artifacts}), encoding="utf-8")
    top = {
        "version": "55.0.0",
        "artifacts": {
            f"assembly-{env}": {
                "type": "cdk:cloud-assembly",
                "properties": {"directoryName": f"assembly-{env}", "displayName": env},
            }
        },
    }
    (outdir / "manifest.json").write_text(json.dumps(top), encoding="utf-8")
    if pipeline is not None:
        (outdir / "pipelines").mkdir(exist_ok=True)
        (outdir / "pipelines" / f"{env}.json").write_text(json.dumps(pipeline), encoding="utf-8")
    return load_assembly(outdir)[0]
