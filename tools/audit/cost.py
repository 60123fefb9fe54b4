"""Section 8: what an environment costs per month when nobody uses it, from its templates and a dated price table.

Every resource lands in exactly one of four groups: fixed idle (charged by the hour or month
whether used or not), usage-dependent (free while idle; the unit prices are listed), no charge,
or unpriced (listed with the reason, never dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.audit.assembly import Environment, Resource
from tools.audit.document import Code, Section
from tools.audit.intrinsics import Resolver, short_path

PRICES_FILE = Path(__file__).with_name("prices.yaml")


class PriceTableError(Exception):
    """The price table is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Price:
    """One list price in one region."""

    name: str
    value: float
    unit: str
    source: str


@dataclass
class PriceTable:
    """The dated price table."""

    as_of: str
    currency: str
    hours_per_month: float
    prices: dict[str, dict[str, Any]]
    usage: dict[str, list[str]]
    free: dict[str, str]

    def price(self, name: str, region: str) -> Price | None:
        """The price called ``name`` in ``region``, or None where the table has none."""
        entry = self.prices.get(name)
        if entry is None or region not in entry.get("regions", {}):
            return None
        return Price(name, float(entry["regions"][region]), str(entry["unit"]), str(entry["source"]))


def load_prices(path: Path = PRICES_FILE) -> PriceTable:
    """Read and check the price table.

    Raises:
        PriceTableError: a missing field, a price without a source or unit, a usage type naming an unknown price.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PriceTableError(f"{path}: cannot be read ({exc})") from exc
    for key in ("as_of", "currency", "hours_per_month", "prices"):
        if key not in (raw or {}):
            raise PriceTableError(f"{path}: missing '{key}'")
    for name, entry in raw["prices"].items():
        for key in ("unit", "source", "regions"):
            if not entry.get(key):
                raise PriceTableError(f"{path}: price '{name}' has no {key}")
        for region, value in entry["regions"].items():
            if not isinstance(value, (int, float)) or value < 0:
                raise PriceTableError(f"{path}: price '{name}' in {region} is not a non-negative number: {value!r}")
    usage = raw.get("usage", {}) or {}
    for type_, names in usage.items():
        unknown = [n for n in names if n not in raw["prices"]]
        if unknown:
            raise PriceTableError(f"{path}: usage of {type_} names unknown prices {unknown}")
    return PriceTable(
        str(raw["as_of"]),
        str(raw["currency"]),
        float(raw["hours_per_month"]),
        raw["prices"],
        usage,
        raw.get("free", {}) or {},
    )


@dataclass(frozen=True)
class FixedLine:
    """One resource's fixed monthly charge."""

    path: str
    what: str
    quantity: float
    price: Price
    hours: bool

    def monthly(self, hours_per_month: float) -> float:
        """Quantity x price (x hours in a month for hourly prices)."""
        return self.quantity * self.price.value * (hours_per_month if self.hours else 1)


@dataclass
class CostStatement:
    """The four groups of one environment."""

    region: str
    fixed: list[FixedLine] = field(default_factory=list)
    usage: dict[str, list[Resource]] = field(default_factory=dict)
    free: dict[str, list[Resource]] = field(default_factory=dict)
    unpriced: list[tuple[Resource, str]] = field(default_factory=list)

    def total(self, table: PriceTable) -> float:
        """The fixed idle cost per month."""
        return round(sum(line.monthly(table.hours_per_month) for line in self.fixed), 2)


def _zones(resolver: Resolver, resource: Resource) -> int | None:
    """The zones an interface endpoint is in: one network interface per subnet listed."""
    subnets = resource.properties.get("SubnetIds")
    if isinstance(subnets, list):
        return len(subnets)
    return None


def endpoint_service(service_name: str, region: str) -> str:
    """The service of an endpoint: ``com.amazonaws.eu-west-1.ecr.api`` -> ``ecr.api``.

    ``aws.sagemaker.eu-west-1.studio`` -> ``sagemaker.studio``.
    """
    parts = service_name.split(".")
    for marker in (region, "${AWS::Region}"):
        if marker in parts:
            at = parts.index(marker)
            prefix = parts[1:at] if parts[0] == "aws" else []
            return ".".join(prefix + parts[at + 1 :])
    return service_name


def _endpoint_variants(env: Environment, resolver: Resolver, endpoint: Resource) -> list[tuple[str, float]] | None:
    config = resolver.target(endpoint.stack, endpoint.properties.get("EndpointConfigName"))
    if config is None:
        return None
    variants = []
    for variant in config.properties.get("ProductionVariants", []):
        if "ServerlessConfig" in variant:
            continue
        variants.append((str(variant.get("InstanceType")), float(variant.get("InitialInstanceCount", 1))))
    return variants


def cost_statement(env: Environment, table: PriceTable) -> CostStatement:
    """Sort every resource of ``env`` into fixed, usage, free or unpriced."""
    resolver = Resolver(env)
    region = env.region
    statement = CostStatement(region)

    def fixed(resource: Resource, what: str, quantity: float, price_name: str, hours: bool) -> None:
        price = table.price(price_name, region)
        if price is None:
            statement.unpriced.append((resource, f"no '{price_name}' price for {region} in the price table"))
        else:
            statement.fixed.append(FixedLine(resource.path, what, quantity, price, hours))

    def usage(resource: Resource, type_: str | None = None) -> None:
        statement.usage.setdefault(type_ or resource.type, []).append(resource)

    for r in env.resources():
        p = r.properties
        if r.type == "AWS::EC2::VPCEndpoint":
            if p.get("VpcEndpointType", "Gateway") == "Gateway":
                statement.free.setdefault("AWS::EC2::VPCEndpoint (Gateway)", []).append(r)
                continue
            zones = _zones(resolver, r)
            if zones is None:
                statement.unpriced.append((r, "its subnets are not a list in the template, so its zones are unknown"))
                continue
            service = endpoint_service(resolver.text(r.stack, p.get("ServiceName")), region)
            fixed(
                r, f"interface endpoint ({service}) in {zones} zone(s)", zones, "vpc_interface_endpoint_zone_hour", True
            )
            usage(r, "AWS::EC2::VPCEndpoint (Interface)")
        elif r.type == "AWS::EC2::NatGateway":
            fixed(r, "NAT gateway", 1, "nat_gateway_hour", True)
            usage(r)
        elif r.type == "AWS::EC2::EIP":
            fixed(r, "public IPv4 address", 1, "public_ipv4_hour", True)
        elif r.type == "AWS::KMS::Key":
            fixed(r, "customer managed key", 1, "kms_key_month", False)
            usage(r)
        elif r.type == "AWS::CloudWatch::Alarm":
            metrics = len([m for m in p.get("Metrics", []) if "MetricStat" in m]) or 1
            fixed(r, f"alarm on {metrics} metric(s)", metrics, "cloudwatch_alarm_metric_month", False)
        elif r.type == "AWS::DynamoDB::Table" and p.get("BillingMode") != "PAY_PER_REQUEST":
            statement.unpriced.append((r, "provisioned capacity is not in the price table (on-demand tables are)"))
        elif r.type == "AWS::CloudWatch::Dashboard":
            fixed(r, "dashboard", 1, "cloudwatch_dashboard_month", False)
        elif r.type == "AWS::SecretsManager::Secret":
            fixed(r, "secret", 1, "secret_month", False)
        elif r.type == "AWS::SSM::Parameter":
            if p.get("Tier") == "Advanced":
                fixed(r, "advanced parameter", 1, "ssm_advanced_parameter_month", False)
            else:
                statement.free.setdefault("AWS::SSM::Parameter (Standard)", []).append(r)
        elif r.type == "AWS::SageMaker::Endpoint":
            variants = _endpoint_variants(env, resolver, r)
            if variants is None:
                statement.unpriced.append((r, "its endpoint configuration is not in these templates"))
            elif not variants:
                usage(r, "AWS::SageMaker::Endpoint (serverless)")
            for instance_type, count in variants or []:
                fixed(
                    r,
                    f"endpoint left running: {count:g} x {instance_type}",
                    count,
                    f"sagemaker_hosting_hour:{instance_type}",
                    True,
                )
        elif r.type == "AWS::CodePipeline::Pipeline":
            kind = "V2" if p.get("PipelineType") == "V2" else "V1"
            statement.usage.setdefault(f"AWS::CodePipeline::Pipeline ({kind})", []).append(r)
        elif r.type in table.usage:
            usage(r)
        elif r.type in table.free:
            statement.free.setdefault(r.type, []).append(r)
        elif r.type.startswith("Custom::") or r.type == "AWS::CloudFormation::CustomResource":
            statement.free.setdefault("custom resources", []).append(r)
        else:
            statement.unpriced.append((r, f"{r.type} is not in the price table"))
    return statement


_USAGE_PRICES = {
    "AWS::EC2::VPCEndpoint (Interface)": ["vpc_endpoint_data_gb"],
    "AWS::EC2::NatGateway": ["nat_gateway_data_gb"],
    "AWS::KMS::Key": ["kms_requests_10k"],
    "AWS::CodePipeline::Pipeline (V1)": ["codepipeline_v1_active_month"],
    "AWS::CodePipeline::Pipeline (V2)": ["codepipeline_v2_action_minute"],
}

_FREE_REASONS = {
    "AWS::EC2::VPCEndpoint (Gateway)": "gateway endpoints (S3, DynamoDB) have no charge",
    "AWS::SSM::Parameter (Standard)": "standard-tier parameters have no charge",
    "custom resources": "their handler runs only while CloudFormation deploys or deletes the stack",
}


def cost_section(env: Environment, table: PriceTable) -> tuple[Section, dict[str, float], float]:
    """Section 8.

    Returns:
        The section, each fixed line's monthly cost (for comparisons), and the fixed idle total.
    """
    statement = cost_statement(env, table)
    hours = table.hours_per_month
    total = statement.total(table)
    section = Section("cost", "8. Idle cost")
    section.para(
        f"Fixed idle cost of {env.name} in {env.region}: {total:.2f} {table.currency} per month "
        f"({len(statement.fixed)} charged resources), before usage. Prices as of {table.as_of} "
        f"(tools/audit/prices.yaml, {hours:g} hours a month, on-demand list prices, no free tier)."
    )
    note = endpoint_note(statement, table)
    if note:
        section.para(note)
    if statement.unpriced:
        section.para(
            f"{len(statement.unpriced)} resources are not priced (listed below): the total leaves them out.", "warn"
        )
    section.heading("Fixed idle")
    fixed = section.table("resource", "what", "quantity", "unit price", "per month", "source")
    by_what: dict[str, float] = {}
    for line in sorted(statement.fixed, key=lambda x: x.path):
        monthly = line.monthly(hours)
        by_what[line.path] = round(monthly, 4)
        fixed.add(
            Code(line.path),
            line.what,
            f"{line.quantity:g}",
            f"{line.price.value:g} {line.price.unit}",
            f"{monthly:.2f}",
            line.price.source,
        )
    fixed.add("total", "", "", "", f"{total:.2f}", "")
    section.heading("Usage-dependent (free while idle)")
    usage = section.table("type", "resources", "charged per unit")
    for type_, resources in sorted(statement.usage.items()):
        names = _USAGE_PRICES.get(type_, table.usage.get(type_, []))
        prices = [table.price(n, env.region) for n in names]
        text = "; ".join(f"{p.value:g} {table.currency} {p.unit}" for p in prices if p) or "(no price in this region)"
        usage.add(Code(type_), len(resources), text)
    section.heading("Unpriced (not in the price table: not in the total)")
    unpriced = section.table("resource", "type", "why")
    for resource, why in statement.unpriced:
        unpriced.add(Code(resource.path), Code(resource.type), why, flag="warn")
    section.heading("No charge")
    free = section.table("type", "resources", "why")
    for type_, resources in sorted(statement.free.items()):
        free.add(Code(type_), len(resources), table.free.get(type_, _FREE_REASONS.get(type_, "")))
    return section, by_what, total


def endpoint_note(statement: CostStatement, table: PriceTable) -> str:
    """What the interface endpoints cost, their share of the fixed idle cost, and their cost in one zone each."""
    lines = [line for line in statement.fixed if line.price.name == "vpc_interface_endpoint_zone_hour"]
    if not lines:
        return ""
    hours = table.hours_per_month
    cost = sum(line.monthly(hours) for line in lines)
    one_zone = sum(line.price.value * hours for line in lines)
    total = statement.total(table)
    return (
        f"Interface endpoints: {len(lines)} endpoints in {sum(line.quantity for line in lines):g} endpoint-zones cost "
        f"{cost:.2f} ({100 * cost / total:.0f}% of the fixed idle cost); placed in one zone each they would cost "
        f"{one_zone:.2f}, and the environment {total - cost + one_zone:.2f}."
    )


__all__ = ["CostStatement", "PriceTable", "cost_section", "cost_statement", "load_prices", "short_path"]
