"""Which resource does a template value point at? Resolved through Ref, GetAtt and cross-stack exports.

Infra tests compare the resource a property refers to with the construct that should be there
(``logical_id_of(stage.foundation.keys.data_key)``), instead of matching fragments of logical ids.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk


def logical_id_of(construct: Any) -> tuple[str, str]:
    """(stack id, logical id) of an L2 construct's CloudFormation resource, or of an L1 resource."""
    resource = construct if isinstance(construct, cdk.CfnElement) else construct.node.default_child
    stack = cdk.Stack.of(resource)
    return stack.node.id, stack.resolve(resource.logical_id)


def referenced(app: Any, env: str, stack: str, value: Any) -> tuple[str, str]:
    """(stack id, logical id) of the resource ``value`` refers to, following exports across stacks.

    Raises:
        AssertionError: the value is not a single reference to a resource.
    """
    templates = app.templates[env]
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return stack, argument
        if function == "Fn::GetAtt":
            return stack, argument[0]
        if function == "Fn::ImportValue":
            for other, template in templates.items():
                for output in template.get("Outputs", {}).values():
                    if output.get("Export", {}).get("Name") == argument:
                        return referenced(app, env, other, output["Value"])
            raise AssertionError(f"no stack of {env} exports {argument}")
    raise AssertionError(f"{value!r} is not a reference to one resource")
