"""Findings, the suppression register, control coverage, idle cost, SARIF and the baseline comparison."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.audit.conftest import resource, write_assembly
from tools.audit import nag_rules
from tools.audit.changes import diff
from tools.audit.compliance import Finding, evaluate, nist_controls
from tools.audit.cost import PriceTableError, cost_statement, endpoint_note, load_prices
from tools.audit.sarif import load_schema, to_sarif
from tools.audit.scanners import ScanResults

NAG = "AwsSolutions::AwsSolutions"


def _report(env: str, acknowledged: list[tuple[str, str]], failed: list[tuple[str, str]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """A validation report as cdk-nag v3 writes it (the plugin repeats it for each stage)."""

    def violation(rule: str, path: str, reason: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ruleName": rule,
            "description": "d",
            "severity": "error",
            "violatingConstructs": [{"constructPath": f"{env}/{path}"}],
        }
        if reason is not None:
            entry.update(acknowledgedId=f"{rule.split('-', 1)[0]}::{rule}", reason=reason)
        return entry

    plugin = {
        "pluginName": "AwsSolutions",
        "violations": [violation(r, p, None) for r, p in failed],
        "suppressedViolations": [violation(r, p, "because") for r, p in acknowledged],
    }
    return {"pluginReports": [plugin, plugin]}


def _no_scans(**checkov: list[dict[str, Any]]) -> ScanResults:
    results = {"passed_checks": [], "failed_checks": [], "skipped_checks": [], **checkov}
    return ScanResults(results, [], "3.3.30", "1.58.0")


def _bucket_with(acks: list[str] = (), skips: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    metadata: dict[str, Any] = {}
    if acks:
        metadata["cdk_nag"] = {"rules_to_suppress": [{"id": a, "reason": "because"} for a in acks]}
    if skips:
        metadata["checkov"] = {"skip": [{"id": s, "comment": "why"} for s in skips]}
    return resource("AWS::S3::Bucket", "dev/Base/Bucket/Resource", **metadata)


def test_given_an_acknowledgment_that_silences_nothing_when_audited_then_it_is_stale(tmp_path: Path) -> None:
    env = write_assembly(
        tmp_path,
        {"Base": {"Bucket": _bucket_with(acks=[f"{NAG}-S1", f"{NAG}-S10"], skips=["CKV_AWS_18", "CKV_AWS_21"])}},
    )
    report = _report("dev", acknowledged=[("AwsSolutions-S1", "Base/Bucket/Resource")])
    template = str(env.stacks[0].template_file.resolve())
    skipped = [
        {
            "check_id": "CKV_AWS_18",
            "check_name": "logging",
            "resource": "AWS::S3::Bucket.Bucket",
            "file_abs_path": template,
            "check_result": {"result": "SKIPPED", "suppress_comment": "why"},
        }
    ]
    result = evaluate(env, report, _no_scans(skipped_checks=skipped), nag_rules.catalogue(), [], [])
    status = {(s.rule, s.status) for s in result.suppressions}
    assert (f"{NAG}-S1", "matches") in status
    assert (f"{NAG}-S10", "stale") in status
    assert ("CKV_AWS_18", "matches") in status
    assert ("CKV_AWS_21", "stale") in status
    assert sorted(s.rule for s in result.stale) == [f"{NAG}-S10", "CKV_AWS_21"]


def test_given_findings_when_evaluated_then_each_resource_rule_pair_has_one_state(tmp_path: Path) -> None:
    env = write_assembly(tmp_path, {"Base": {"Bucket": _bucket_with(acks=[f"{NAG}-S1"])}})
    report = _report(
        "dev",
        acknowledged=[("AwsSolutions-S1", "Base/Bucket/Resource")],
        failed=[("AwsSolutions-S10", "Base/Bucket/Resource")],
    )
    result = evaluate(env, report, _no_scans(), nag_rules.catalogue(), [], [])
    states = {f.rule: f.state for f in result.findings if f.tool == "cdk-nag"}
    assert states["AwsSolutions-S1"] == "acknowledged"
    assert states["AwsSolutions-S10"] == "failed"
    # S2 (public access block) inspects buckets and reported nothing: passed.
    assert states["AwsSolutions-S2"] == "passed"
    keys = [(f.tool, f.rule, f.path) for f in result.findings]
    assert len(keys) == len(set(keys))
    controls = nist_controls(env, result)
    replication = next(r for r in nag_rules.catalogue() if r.rule_id == "NIST.800.53.R5-S3BucketReplicationEnabled")
    assert "S3BucketReplicationEnabled" in controls[replication.controls[0]]["passed"]


# cdk-nag 3.0.2's RULES.md lists other controls for these two rules than the pack prints in its findings;
# the audit reports what the pack prints. An upgrade that reconciles them (or adds another) fails this test.
UPSTREAM_DISAGREEMENTS = {"NIST.800.53.R5-SecretsManagerRotationEnabled", "NIST.800.53.R5-SNSEncryptedKMS"}


def test_given_the_installed_cdk_nag_then_each_nist_rule_has_the_controls_its_rules_md_documents() -> None:
    rules = {r.rule_id: r.controls for r in nag_rules.catalogue() if r.pack == "NIST.800.53.R5"}
    with tarfile.open(nag_rules._tarball()) as tar:
        extracted = tar.extractfile("package/RULES.md")
        assert extracted is not None
        text = extracted.read().decode("utf-8")
    section = text.split("## NIST 800-53 rev 5", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("[NIST.800.53.R5-"):
            documented[cells[0][1:].split("]", 1)[0]] = nag_rules.split_controls(cells[3])
    assert len(rules) > 50
    assert set(documented) <= set(rules)
    differing = {rule for rule, controls in documented.items() if set(controls) != set(rules[rule])}
    assert differing == UPSTREAM_DISAGREEMENTS


PRICES = """
as_of: "2026-01-01"
currency: USD
hours_per_month: 730
prices:
  vpc_interface_endpoint_zone_hour: {unit: per zone-hour, source: https://example.test/a, regions: {eu-west-1: 0.01}}
  nat_gateway_hour: {unit: per hour, source: https://example.test/b, regions: {eu-west-1: 0.05}}
  kms_key_month: {unit: per key month, source: https://example.test/c, regions: {eu-west-1: 1.0}}
  cloudwatch_alarm_metric_month: {unit: per alarm metric, source: https://example.test/d, regions: {eu-west-1: 0.1}}
  secret_month: {unit: per secret month, source: https://example.test/e, regions: {eu-west-1: 0.4}}
  s3_standard_gb_month: {unit: per GB-month, source: https://example.test/f, regions: {eu-west-1: 0.023}}
usage:
  AWS::S3::Bucket: [s3_standard_gb_month]
free:
  AWS::IAM::Role: IAM has no charge
"""


def test_given_a_known_template_when_costed_then_the_idle_cost_is_the_expected_sum(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES, encoding="utf-8")
    subnets = [{"Ref": f"Subnet{i}"} for i in range(3)]
    env = write_assembly(
        tmp_path / "cdk.out",
        {
            "Net": {
                "ThreeZones": resource(
                    "AWS::EC2::VPCEndpoint",
                    "dev/Net/A/Resource",
                    {
                        "VpcEndpointType": "Interface",
                        "ServiceName": "com.amazonaws.eu-west-1.sts",
                        "SubnetIds": subnets,
                    },
                ),
                "OneZone": resource(
                    "AWS::EC2::VPCEndpoint",
                    "dev/Net/B/Resource",
                    {
                        "VpcEndpointType": "Interface",
                        "ServiceName": "com.amazonaws.eu-west-1.kms",
                        "SubnetIds": subnets[:1],
                    },
                ),
                "Gateway": resource("AWS::EC2::VPCEndpoint", "dev/Net/S3/Resource", {"ServiceName": "s3"}),
                "Nat": resource("AWS::EC2::NatGateway", "dev/Net/Nat/Resource"),
                "Key": resource("AWS::KMS::Key", "dev/Net/Key/Resource"),
                "Alarm": resource("AWS::CloudWatch::Alarm", "dev/Net/Alarm/Resource"),
                "Secret": resource("AWS::SecretsManager::Secret", "dev/Net/Secret/Resource"),
                "Bucket": resource("AWS::S3::Bucket", "dev/Net/Bucket/Resource"),
                "Role": resource("AWS::IAM::Role", "dev/Net/Role/Resource"),
                "Odd": resource("AWS::Foo::Bar", "dev/Net/Odd/Resource"),
            }
        },
    )
    table = load_prices(prices)
    statement = cost_statement(env, table)
    # (3 + 1) endpoint-zones x 0.01 x 730 + NAT 0.05 x 730 + key 1 + alarm 0.1 + secret 0.4
    assert statement.total(table) == pytest.approx(29.2 + 36.5 + 1.0 + 0.1 + 0.4)
    assert endpoint_note(statement, table) == (
        "Interface endpoints: 2 endpoints in 4 endpoint-zones cost 29.20 (43% of the fixed idle cost); placed in one "
        "zone each they would cost 14.60, and the environment 52.60."
    )
    assert [r.path for r in statement.usage["AWS::S3::Bucket"]] == ["dev/Net/Bucket/Resource"]
    assert [(r.path, why) for r, why in statement.unpriced] == [
        ("dev/Net/Odd/Resource", "AWS::Foo::Bar is not in the price table"),
    ]
    assert set(statement.free) == {"AWS::EC2::VPCEndpoint (Gateway)", "AWS::IAM::Role"}
    fixed = {line.path for line in statement.fixed}
    usage = {r.path for rs in statement.usage.values() for r in rs}
    free = {r.path for rs in statement.free.values() for r in rs}
    unpriced = {r.path for r, _ in statement.unpriced}
    # Nothing is dropped; nothing is both charged and free. (Fixed items may also have a per-unit usage price.)
    assert fixed | usage | free | unpriced == {r.path for r in env.resources()}
    assert not (fixed & free) and not (fixed & unpriced) and not (free & unpriced) and not (usage & free)


def test_given_a_price_without_a_source_when_loaded_then_the_error_names_it(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES.replace("source: https://example.test/c, ", ""), encoding="utf-8")
    with pytest.raises(PriceTableError, match="kms_key_month' has no source"):
        load_prices(prices)


def test_the_shipped_price_table_loads_and_every_price_has_a_source() -> None:
    table = load_prices()
    assert table.as_of
    for name in table.prices:
        price = table.price(name, "eu-west-1")
        assert price is not None and price.source.startswith("https://aws.amazon.com/"), name


def test_given_the_deploy_and_monitoring_types_when_costed_then_a_dashboard_is_fixed_and_tables_by_capacity(
    tmp_path: Path,
) -> None:
    env = write_assembly(
        tmp_path / "cdk.out",
        {
            "Ops": {
                "Board": resource("AWS::CloudWatch::Dashboard", "dev/Ops/Board/Resource"),
                "OnDemand": resource(
                    "AWS::DynamoDB::Table", "dev/Ops/OnDemand/Resource", {"BillingMode": "PAY_PER_REQUEST"}
                ),
                "Provisioned": resource("AWS::DynamoDB::Table", "dev/Ops/Provisioned/Resource", {}),
                "Machine": resource("AWS::StepFunctions::StateMachine", "dev/Ops/Machine/Resource"),
                "Schedule": resource("AWS::Scheduler::Schedule", "dev/Ops/Schedule"),
                "Target": resource("AWS::ApplicationAutoScaling::ScalableTarget", "dev/Ops/Target"),
            }
        },
    )
    table = load_prices()
    statement = cost_statement(env, table)
    assert [(line.path, line.what) for line in statement.fixed] == [("dev/Ops/Board/Resource", "dashboard")]
    assert statement.total(table) == pytest.approx(3.0)
    # A table without BillingMode is provisioned (CloudFormation's default): its capacity is an idle cost
    # this table has no price for, so it is named, not assumed free.
    assert [(r.path, why) for r, why in statement.unpriced] == [
        ("dev/Ops/Provisioned/Resource", "provisioned capacity is not in the price table (on-demand tables are)")
    ]
    usage = {r.path for rs in statement.usage.values() for r in rs}
    assert usage == {"dev/Ops/OnDemand/Resource", "dev/Ops/Machine/Resource", "dev/Ops/Schedule"}
    assert set(statement.free) == {"AWS::ApplicationAutoScaling::ScalableTarget"}


def test_given_failed_and_acknowledged_findings_then_the_sarif_log_validates_and_marks_suppressions(
    tmp_path: Path,
) -> None:
    template = tmp_path / "t.template.json"
    template.write_text('{\n "Resources": {\n  "Bucket": {\n   "Type": "AWS::S3::Bucket"\n  }\n }\n}\n')
    findings = [
        Finding(
            "checkov",
            "CKV_AWS_18",
            "logging",
            "not rated",
            "acknowledged",
            "dev/B",
            str(template),
            "Bucket",
            "it is the log bucket",
        ),
        Finding("cfn-lint", "E3012", "bad type", "error", "failed", "dev/B", str(template), "Bucket"),
        Finding("cdk-nag", "AwsSolutions-S1", "x", "error", "passed", "dev/B", str(template), "Bucket"),
    ]
    log = to_sarif(findings, {"checkov": "3.3.30"}, tmp_path)
    jsonschema.Draft7Validator(load_schema()).validate(log)
    runs = {run["tool"]["driver"]["name"]: run for run in log["runs"]}
    assert runs["cdk-nag"]["results"] == []
    skipped = runs["checkov"]["results"][0]
    assert skipped["suppressions"][0]["justification"] == "it is the log bucket"
    failed = runs["cfn-lint"]["results"][0]
    assert "suppressions" not in failed
    assert failed["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    assert failed["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "t.template.json"


def test_given_a_result_without_a_rule_id_then_the_schema_rejects_it() -> None:
    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": 1}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(load_schema()).validate(log)


def test_given_two_reports_when_compared_then_additions_removals_and_changes_are_listed() -> None:
    before = {
        "resources": {"A/x": {"type": "AWS::S3::Bucket"}, "A/y": {"type": "AWS::SQS::Queue"}},
        "permissions": {"role": ["s3:GetObject"]},
        "cost": {"A/k": 1.0},
    }
    after = {
        "resources": {"A/x": {"type": "AWS::S3::Bucket"}, "A/z": {"type": "AWS::KMS::Key"}},
        "permissions": {"role": ["s3:GetObject", "s3:PutObject"]},
        "cost": {"A/k": 2.0},
    }
    changes = diff(before, after)
    assert [(c, k) for c, k, _, _ in changes["resources"]] == [("added", "A/z"), ("removed", "A/y")]
    assert [(c, k) for c, k, _, _ in changes["permissions"]] == [("added", "role :: s3:PutObject")]
    assert changes["cost"] == [("changed", "A/k", "1.0", "2.0")]
    assert changes["findings"] == []
