"""Section 6: VPCs, subnets, routes, endpoints, security groups and every rule, internet paths called out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.audit.assembly import Environment
from tools.audit.document import Code, Flag, Section
from tools.audit.intrinsics import Resolver, short_path

_ANYWHERE = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class Rule:
    """One security-group rule, rendered."""

    group: str
    direction: str
    protocol: str
    ports: str
    peer: str
    description: str
    flag: Flag
    note: str


def _ports(rule: dict[str, Any]) -> str:
    protocol = str(rule.get("IpProtocol", ""))
    if protocol in ("-1", "all"):
        return "all"
    start, end = rule.get("FromPort"), rule.get("ToPort")
    if start is None:
        return "all"
    return str(start) if start == end else f"{start}-{end}"


def _peer(resolver: Resolver, stack: str, rule: dict[str, Any], direction: str) -> str:
    for prop in ("CidrIp", "CidrIpv6"):
        if prop in rule:
            return resolver.text(stack, rule[prop])
    group_prop = "SourceSecurityGroupId" if direction == "ingress" else "DestinationSecurityGroupId"
    for prop in (group_prop, "SourcePrefixListId", "DestinationPrefixListId"):
        if prop in rule:
            target = resolver.target(stack, rule[prop])
            return f"security group {short_path(target)}" if target else resolver.text(stack, rule[prop])
    return "(no peer)"


def _rule(resolver: Resolver, stack: str, group: str, direction: str, rule: dict[str, Any], internet: bool) -> Rule:
    peer = _peer(resolver, stack, rule, direction)
    protocol = str(rule.get("IpProtocol", ""))
    flag: Flag = ""
    note = ""
    # CDK's placeholder rule that denies all egress by matching nothing.
    if peer == "255.255.255.255/32" and protocol == "icmp":
        note = "no egress (CDK's placeholder rule that matches nothing)"
    elif peer in _ANYWHERE and direction == "ingress":
        flag, note = "error", "reachable from the internet"
    elif peer in _ANYWHERE:
        if internet:
            flag, note = "error", "may reach the internet: the VPC has a route out"
        else:
            flag, note = "warn", "any destination; no route to the internet exists in these templates"
    return Rule(group, direction, protocol, _ports(rule), peer, str(rule.get("Description", "")), flag, note)


def security_group_rules(env: Environment, resolver: Resolver, internet: bool) -> list[Rule]:
    """Every rule of every security group: inline, and the separate ingress/egress resources."""
    rules = []
    for r in env.resources():
        if r.type == "AWS::EC2::SecurityGroup":
            for direction, prop in (("ingress", "SecurityGroupIngress"), ("egress", "SecurityGroupEgress")):
                for rule in r.properties.get(prop, []):
                    rules.append(_rule(resolver, r.stack, short_path(r), direction, rule, internet))
        elif r.type in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            direction = "ingress" if r.type.endswith("Ingress") else "egress"
            target = resolver.target(r.stack, r.properties.get("GroupId"))
            group = short_path(target) if target else resolver.text(r.stack, r.properties.get("GroupId"))
            rules.append(_rule(resolver, r.stack, group, direction, r.properties, internet))
    return sorted(rules, key=lambda x: (x.group, x.direction, x.peer, x.ports))


def internet_paths(env: Environment, resolver: Resolver) -> list[tuple[str, str]]:
    """What connects these templates to the internet: gateways, routes, public IPs, resources outside a VPC."""
    out = []
    for r in env.resources():
        p = r.properties
        if r.type in ("AWS::EC2::InternetGateway", "AWS::EC2::EgressOnlyInternetGateway"):
            out.append((r.path, "internet gateway"))
        elif r.type == "AWS::EC2::NatGateway":
            out.append((r.path, "NAT gateway: private subnets routed to it reach the internet"))
        elif r.type == "AWS::EC2::Route" and (
            p.get("DestinationCidrBlock") in _ANYWHERE or p.get("DestinationIpv6CidrBlock") in _ANYWHERE
        ):
            via = next(
                (
                    k
                    for k in (
                        "GatewayId",
                        "NatGatewayId",
                        "EgressOnlyInternetGatewayId",
                        "TransitGatewayId",
                        "VpcPeeringConnectionId",
                        "InstanceId",
                        "NetworkInterfaceId",
                    )
                    if k in p
                ),
                "?",
            )
            out.append((r.path, f"default route via {via} {resolver.text(r.stack, p.get(via, ''))}"))
        elif r.type == "AWS::EC2::Subnet" and p.get("MapPublicIpOnLaunch"):
            out.append((r.path, "public subnet: instances get public IPs"))
        elif r.type == "AWS::EC2::EIP":
            out.append((r.path, "Elastic IP (public address)"))
        elif r.type == "AWS::SageMaker::Domain" and p.get("AppNetworkAccessType", "PublicInternetOnly") != "VpcOnly":
            out.append((r.path, "Studio domain with PublicInternetOnly: apps reach the internet directly"))
        elif r.type == "AWS::SageMaker::NotebookInstance" and p.get("DirectInternetAccess", "Enabled") == "Enabled":
            out.append((r.path, "notebook instance with direct internet access"))
        elif r.type == "AWS::Lambda::Function" and "VpcConfig" not in p:
            out.append((r.path, "function outside any VPC: runs in Lambda's network, which reaches the internet"))
        elif r.type == "AWS::CodeBuild::Project" and "VpcConfig" not in p:
            out.append((r.path, "build project outside any VPC: builds reach the internet"))
        elif r.type == "AWS::S3::Bucket":
            block = p.get("PublicAccessBlockConfiguration", {})
            if not all(
                block.get(k)
                for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
            ):
                out.append((r.path, "bucket without a full public access block"))
    return out


def network_section(env: Environment) -> tuple[Section, dict[str, str]]:
    """Section 6.

    Returns:
        The section and, for comparisons, each rule and internet path as text.
    """
    resolver = Resolver(env)
    section = Section("network", "6. Network")
    resources = list(env.resources())
    paths = internet_paths(env, resolver)
    has_route_out = any(k.startswith("default route") or k.startswith("NAT") for _, k in paths)
    rules = security_group_rules(env, resolver, has_route_out)
    section.heading("Reachable from or to the internet")
    if not paths and not any(r.flag == "error" for r in rules):
        section.para("Nothing in these templates is reachable from the internet, and no subnet has a route out.", "")
    table = section.table("resource", "why")
    for path, why in paths:
        table.add(Code(path), why, flag="error" if "gateway" in why or "route" in why or "public" in why else "warn")
    for rule in rules:
        if rule.flag == "error":
            table.add(
                Code(rule.group),
                f"{rule.direction} {rule.protocol} {rule.ports} {rule.peer}: {rule.note}",
                flag="error",
            )
    section.heading("VPCs and subnets")
    table = section.table("resource", "type", "CIDR", "zone / VPC", "public IPs")
    for r in resources:
        if r.type == "AWS::EC2::VPC":
            table.add(
                Code(short_path(r)), "VPC", Code(resolver.text(r.stack, r.properties.get("CidrBlock", ""))), "", ""
            )
        elif r.type == "AWS::EC2::Subnet":
            p = r.properties
            table.add(
                Code(short_path(r)),
                "subnet",
                Code(resolver.text(r.stack, p.get("CidrBlock", ""))),
                resolver.text(r.stack, p.get("AvailabilityZone", "")),
                "yes" if p.get("MapPublicIpOnLaunch") else "no",
                flag="error" if p.get("MapPublicIpOnLaunch") else "",
            )
    section.heading("Route tables")
    table = section.table("route table", "subnets", "routes")
    for rt in (r for r in resources if r.type == "AWS::EC2::RouteTable"):
        subnets = [
            resolver.text(a.stack, a.properties.get("SubnetId"))
            for a in resources
            if a.type == "AWS::EC2::SubnetRouteTableAssociation"
            and resolver.target(a.stack, a.properties.get("RouteTableId")) == rt
        ]
        routes = [
            f"{x.properties.get('DestinationCidrBlock', x.properties.get('DestinationIpv6CidrBlock', '?'))} → "
            + resolver.text(
                x.stack, {k: v for k, v in x.properties.items() if k.endswith("Id") and k != "RouteTableId"}
            )
            for x in resources
            if x.type == "AWS::EC2::Route" and resolver.target(x.stack, x.properties.get("RouteTableId")) == rt
        ]
        gateways = [
            short_path(e)
            for e in resources
            if e.type == "AWS::EC2::VPCEndpoint"
            and rt in resolver.targets(e.stack, e.properties.get("RouteTableIds", []))
        ]
        routes += [f"prefix list of {g} (gateway endpoint)" for g in gateways]
        table.add(Code(short_path(rt)), "\n".join(subnets), "\n".join(["local (VPC)", *routes]))
    section.heading("VPC endpoints")
    table = section.table("endpoint", "service", "type", "zones (subnets)", "security groups", "policy")
    for e in (r for r in resources if r.type == "AWS::EC2::VPCEndpoint"):
        p = e.properties
        table.add(
            Code(short_path(e)),
            Code(resolver.text(e.stack, p.get("ServiceName"))),
            p.get("VpcEndpointType", "Gateway"),
            str(len(p.get("SubnetIds", []))) if "SubnetIds" in p else "(route tables)",
            ", ".join(short_path(t) for t in resolver.targets(e.stack, p.get("SecurityGroupIds", []))),
            "custom" if "PolicyDocument" in p else "default (full access)",
        )
    section.heading("Security groups and every rule")
    table = section.table("security group", "direction", "protocol", "ports", "peer", "description", "note")
    for rule in rules:
        table.add(
            Code(rule.group),
            rule.direction,
            rule.protocol,
            rule.ports,
            Code(rule.peer),
            rule.description,
            rule.note,
            flag=rule.flag,
        )
    data = {f"{r.group} {r.direction} {r.protocol} {r.ports} {r.peer}": r.note for r in rules}
    data.update({f"internet: {p}": why for p, why in paths})
    return section, data
