"""Section 5: each role, who may assume it, what it may do; wildcards highlighted; resource policies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tools.audit.assembly import Environment, Resource
from tools.audit.document import Code, Section
from tools.audit.intrinsics import Resolver, short_path

# Resource policies: type -> property holding the document, and the property naming what it protects.
_RESOURCE_POLICIES: dict[str, tuple[str, str | None]] = {
    "AWS::KMS::Key": ("KeyPolicy", None),
    "AWS::S3::BucketPolicy": ("PolicyDocument", "Bucket"),
    "AWS::ECR::Repository": ("RepositoryPolicyText", None),
    "AWS::SQS::QueuePolicy": ("PolicyDocument", "Queues"),
    "AWS::SNS::TopicPolicy": ("PolicyDocument", "Topics"),
    "AWS::Lambda::Permission": ("", None),
}


@dataclass(frozen=True)
class Statement:
    """One policy statement, rendered, with its wildcard verdict."""

    source: str
    effect: str
    principal: str
    actions: str
    resources: str
    condition: str
    wildcard: str

    def key(self) -> str:
        """A stable text for comparing permissions between reports."""
        return " | ".join((self.source, self.effect, self.principal, self.actions, self.resources, self.condition))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_reason(actions: list[str], resources: list[str], statement: dict[str, Any]) -> str:
    """Why a statement counts as a wildcard ('' if it does not): a ``*`` in an action or resource, or a Not*."""
    reasons = []
    if "NotAction" in statement:
        reasons.append("NotAction")
    if "NotResource" in statement:
        reasons.append("NotResource")
    wild_actions = [a for a in actions if "*" in a]
    if wild_actions:
        reasons.append("action " + ", ".join(wild_actions))
    wild_resources = [r for r in resources if "*" in r]
    if wild_resources:
        reasons.append("resource " + ", ".join(wild_resources))
    return "; ".join(reasons)


def unbounded(statement: Statement) -> bool:
    """A wildcard with no limit at all: every action of a service, or every resource, with no condition."""
    if statement.condition or not statement.wildcard or statement.source.startswith("managed policy"):
        return False
    actions = [a.strip() for a in statement.actions.removeprefix("NOT ").split(",")]
    resources = [r.strip() for r in statement.resources.removeprefix("NOT ").split(",")]
    return "*" in resources or any(a == "*" or a.endswith(":*") for a in actions) or "NOT" in statement.wildcard


def statements(resolver: Resolver, stack: str, source: str, document: Any) -> list[Statement]:
    """The statements of one policy document."""
    if not isinstance(document, dict):
        return []
    out = []
    for raw in _as_list(document.get("Statement", [])):
        if not isinstance(raw, dict):
            continue
        actions = [resolver.text(stack, a) for a in _as_list(raw.get("Action", raw.get("NotAction", [])))]
        resources = [resolver.text(stack, r) for r in _as_list(raw.get("Resource", raw.get("NotResource", [])))]
        principal = raw.get("Principal", raw.get("NotPrincipal"))
        condition = raw.get("Condition")
        out.append(
            Statement(
                source=source,
                effect=str(raw.get("Effect", "")),
                principal=_principal(resolver, stack, principal),
                actions=("NOT " if "NotAction" in raw else "") + ", ".join(actions),
                resources=("NOT " if "NotResource" in raw else "") + ", ".join(resources),
                condition=json.dumps(_readable(resolver, stack, condition), sort_keys=True) if condition else "",
                wildcard=wildcard_reason(actions, resources, raw) if raw.get("Effect") == "Allow" else "",
            )
        )
    return out


def _readable(resolver: Resolver, stack: str, value: Any) -> Any:
    if isinstance(value, dict):
        if any(k == "Ref" or k.startswith("Fn::") for k in value):
            return resolver.text(stack, value)
        return {k: _readable(resolver, stack, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(resolver, stack, v) for v in value]
    return value


def _principal(resolver: Resolver, stack: str, principal: Any) -> str:
    if principal is None:
        return ""
    if isinstance(principal, str):
        return principal
    parts = []
    for kind, values in principal.items():
        for value in _as_list(values):
            parts.append(f"{kind}: {resolver.text(stack, value)}")
    return ", ".join(parts)


def role_policies(env: Environment) -> dict[str, list[Resource]]:
    """For each role (by key), the policy resources that attach to it (Roles: [Ref role])."""
    resolver = Resolver(env)
    attached: dict[str, list[Resource]] = {}
    for resource in env.resources():
        if resource.type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role in resolver.targets(resource.stack, resource.properties.get("Roles", [])):
                attached.setdefault(role.key, []).append(resource)
    return attached


def role_statements(env: Environment, resolver: Resolver, role: Resource, attached: list[Resource]) -> list[Statement]:
    """Everything a role may do: inline policies, attached policies, and managed policy ARNs."""
    out = []
    for policy in role.properties.get("Policies", []):
        out += statements(resolver, role.stack, f"inline {policy.get('PolicyName')}", policy.get("PolicyDocument"))
    for policy in attached:
        out += statements(resolver, policy.stack, short_path(policy), policy.properties.get("PolicyDocument"))
    for arn in role.properties.get("ManagedPolicyArns", []):
        target = resolver.target(role.stack, arn)
        if target is not None and target.type == "AWS::IAM::ManagedPolicy" and target not in attached:
            out += statements(resolver, target.stack, short_path(target), target.properties.get("PolicyDocument"))
        elif target is None:
            text = resolver.text(role.stack, arn)
            out.append(
                Statement(
                    f"managed policy {text}",
                    "Allow",
                    "",
                    "(AWS-managed policy: see IAM)",
                    "",
                    "",
                    "AWS-managed policy: its statements are not in the template",
                )
            )
    return out


def iam_section(env: Environment) -> tuple[Section, dict[str, list[str]]]:
    """Section 5.

    Returns:
        The section and, for comparisons, each role's and resource policy's statements as text.
    """
    resolver = Resolver(env)
    section = Section("iam", "5. Identity and access")
    attached = role_policies(env)
    roles = [r for r in env.resources() if r.type == "AWS::IAM::Role"]
    data: dict[str, list[str]] = {}
    all_wildcards: list[tuple[str, Statement]] = []
    per_role: list[tuple[Resource, list[Statement], list[Statement]]] = []
    for role in sorted(roles, key=lambda r: r.path):
        trust = statements(resolver, role.stack, "trust", role.properties.get("AssumeRolePolicyDocument"))
        may = role_statements(env, resolver, role, attached.get(role.key, []))
        per_role.append((role, trust, may))
        all_wildcards += [(short_path(role), s) for s in may if s.wildcard]
        data[role.path] = sorted(s.key() for s in trust + may)
    section.para(
        f"{len(roles)} roles; {len(all_wildcards)} allowed statements with a wildcard action or resource, each with "
        "its condition. Red: every action of a service or every resource, with no condition; yellow: a wildcard "
        "bounded by a prefix or a condition."
    )
    section.heading("Wildcard statements")
    table = section.table("role", "policy", "actions", "resources", "condition", "wildcard")
    for role_name, s in all_wildcards:
        table.add(
            Code(role_name),
            Code(s.source),
            Code(s.actions),
            Code(s.resources),
            Code(s.condition) if s.condition else "(none)",
            s.wildcard,
            flag="error" if unbounded(s) else "warn",
        )
    section.heading("Roles: who may assume them")
    trusts = section.table("role", "name", "principal", "action", "condition")
    for role, trust, _ in per_role:
        for s in trust:
            trusts.add(
                Code(short_path(role)),
                Code(resolver.text(role.stack, role.properties.get("RoleName", ""))),
                Code(s.principal),
                Code(s.actions),
                Code(s.condition),
            )
    for role, _, may in per_role:
        section.heading(f"What {short_path(role)} may do")
        grants = section.table("policy", "effect", "actions", "resources", "condition")
        for s in may:
            grants.add(
                Code(s.source),
                s.effect,
                Code(s.actions),
                Code(s.resources),
                Code(s.condition),
                flag="warn" if s.wildcard else "",
            )
    orphan = [
        r
        for r in env.resources()
        if r.type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and not resolver.targets(r.stack, r.properties.get("Roles", []))
    ]
    if orphan:
        section.heading("Policies attached to no role of these templates (users, groups, or roles elsewhere)")
        table = section.table("policy", "effect", "actions", "resources", "condition")
        for policy in orphan:
            for s in statements(resolver, policy.stack, short_path(policy), policy.properties.get("PolicyDocument")):
                table.add(
                    Code(s.source),
                    s.effect,
                    Code(s.actions),
                    Code(s.resources),
                    Code(s.condition),
                    flag="warn" if s.wildcard else "",
                )
    section.heading("Resource policies (keys, buckets, repositories, queues, topics)")
    table = section.table("protects", "principal", "effect", "actions", "resources", "condition")
    for resource in env.resources():
        if resource.type not in _RESOURCE_POLICIES or resource.type == "AWS::Lambda::Permission":
            continue
        prop, target_prop = _RESOURCE_POLICIES[resource.type]
        protects = short_path(resource)
        if target_prop is not None:
            protects = resolver.text(resource.stack, resource.properties.get(target_prop))
        document = statements(resolver, resource.stack, protects, resource.properties.get(prop))
        data[f"policy:{resource.path}"] = sorted(s.key() for s in document)
        for s in document:
            table.add(
                Code(protects),
                Code(s.principal),
                s.effect,
                Code(s.actions),
                Code(s.resources),
                Code(s.condition),
                flag="warn" if s.wildcard else "",
            )
    permissions = [r for r in env.resources() if r.type == "AWS::Lambda::Permission"]
    if permissions:
        section.heading("Who may invoke functions (Lambda permissions)")
        table = section.table("function", "principal", "action", "source")
        for p in permissions:
            props = p.properties
            table.add(
                Code(resolver.text(p.stack, props.get("FunctionName"))),
                Code(str(props.get("Principal"))),
                Code(str(props.get("Action"))),
                Code(resolver.text(p.stack, props.get("SourceArn", ""))),
            )
    return section, data
