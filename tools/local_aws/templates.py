"""The synthesized templates, read as CloudFormation would resolve them here: what a local run configures itself from.

``make demo`` and the loop's tests take their settings (functions' environments, alarms, rules,
state machine definitions) from ``cdk.out``, so the loop runs as deployed, not as re-described.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class Assembly:
    """The templates of a cloud assembly, by environment and stack id (``dev``, ``Deploy``)."""

    def __init__(self, templates: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.templates = templates

    @classmethod
    def read(cls, cdk_out: Path) -> Assembly:
        """The assembly ``cdk synth`` wrote (one nested assembly per environment)."""
        manifest = json.loads((cdk_out / "manifest.json").read_text())
        templates: dict[str, dict[str, dict[str, Any]]] = {}
        for name, artifact in manifest["artifacts"].items():
            if artifact["type"] != "cdk:cloud-assembly":
                continue
            folder = cdk_out / artifact["properties"]["directoryName"]
            nested = json.loads((folder / "manifest.json").read_text())
            env = name.removeprefix("assembly-")
            for stack in nested["artifacts"].values():
                if stack["type"] == "aws:cloudformation:stack":
                    stack_id = stack["displayName"].split("/")[-1]
                    template = json.loads((folder / stack["properties"]["templateFile"]).read_text())
                    templates.setdefault(env, {})[stack_id] = template
        return cls(templates)

    def template(self, env: str, stack: str) -> dict[str, Any]:
        try:
            return self.templates[env][stack]
        except KeyError:
            raise KeyError(f"no stack {env}/{stack} in the assembly: run make synth") from None


def only(template: dict[str, Any], type_: str, **match: Any) -> tuple[str, dict[str, Any]]:
    """The one resource of ``type_`` whose properties have these values: (logical id, resource)."""
    found = [
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == type_ and all(resource.get("Properties", {}).get(k) == v for k, v in match.items())
    ]
    if len(found) != 1:
        raise LookupError(f"{len(found)} resources {type_} {match or ''} in the template, expected one")
    return found[0]


def resolve(value: Any, known: dict[str, Any]) -> Any:
    """A template value with its references replaced by what they stand for here.

    ``known`` maps logical ids and parameters (``Ref``), ``<id>.<attribute>`` (``Fn::GetAtt``) and
    export names (``Fn::ImportValue``) to values; ``Fn::Join`` and ``Fn::Select``/``Fn::Split`` are applied.

    Raises:
        KeyError: a reference nobody gave a value for (named).
    """
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return _known(known, argument)
        if function == "Fn::GetAtt":
            return _known(known, f"{argument[0]}.{argument[1]}")
        if function == "Fn::ImportValue":
            return _known(known, argument)
        if function == "Fn::Join":
            return argument[0].join(str(resolve(part, known)) for part in argument[1])
        if function == "Fn::Select":
            return resolve(argument[1], known)[int(argument[0])]
        if function == "Fn::Split":
            return str(resolve(argument[1], known)).split(argument[0])
    if isinstance(value, dict):
        return {k: resolve(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, known) for v in value]
    return value


def _known(known: dict[str, Any], name: str) -> Any:
    if name not in known:
        raise KeyError(f"the template refers to {name}, which has no value here")
    return known[name]


def placeholders(template: dict[str, Any]) -> dict[str, str]:
    """Values for what a template refers to outside a local run's control: its roles, security groups,
    parameters and the other stacks' exports (well-formed stand-ins: moto checks none of them)."""
    known: dict[str, str] = {}
    account, region = "123456789012", "eu-west-1"
    for logical_id, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            known[f"{logical_id}.Arn"] = f"arn:aws:iam::{account}:role/{props.get('RoleName', logical_id)}"
        elif kind == "AWS::EC2::SecurityGroup":
            known[f"{logical_id}.GroupId"] = "sg-0ccc"
        # Named resources: what their Ref (and Arn) stand for, as in the account the local run uses.
        elif kind == "AWS::DynamoDB::Table" and isinstance(props.get("TableName"), str):
            known[logical_id] = props["TableName"]
            known[f"{logical_id}.Arn"] = f"arn:aws:dynamodb:{region}:{account}:table/{props['TableName']}"
        elif kind == "AWS::SNS::Topic" and isinstance(props.get("TopicName"), str):
            known[logical_id] = f"arn:aws:sns:{region}:{account}:{props['TopicName']}"
        elif kind == "AWS::Lambda::Function" and isinstance(props.get("FunctionName"), str):
            known[logical_id] = props["FunctionName"]
            known[f"{logical_id}.Arn"] = f"arn:aws:lambda:{region}:{account}:function:{props['FunctionName']}"
        elif kind == "AWS::S3::Bucket" and isinstance(props.get("BucketName"), str):
            known[logical_id] = props["BucketName"]
    for parameter in template.get("Parameters", {}):
        known.setdefault(parameter, "x")
    for export in exports(template):
        known.setdefault(export, "subnet-0aaa" if "Subnet" in export else "x")
    known.setdefault("AWS::URLSuffix", "amazonaws.com")
    known.setdefault("AWS::Partition", "aws")
    return known


def exports(value: Any) -> list[str]:
    """Every export a template value imports."""
    if isinstance(value, dict):
        if set(value) == {"Fn::ImportValue"}:
            return [value["Fn::ImportValue"]]
        return [e for v in value.values() for e in exports(v)]
    if isinstance(value, list):
        return [e for v in value for e in exports(v)]
    return []
