"""The compliance gate: it fails on a new finding, its table has no stale entries, IAM stays least-privilege."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import aws_s3 as s3

import app as entry
from stacks.compliance.acknowledgments import ACKNOWLEDGMENTS, all_pairs
from stacks.config import load_config, load_promotions
from stacks.stage import EnvironmentStage

ROOT = Path(__file__).resolve().parents[2]


def test_every_acknowledgment_applies_somewhere(single_account, multi_account) -> None:
    used = single_account.acknowledgments_used | multi_account.acknowledgments_used
    stale = sorted(all_pairs() - used)
    assert not stale, f"acknowledgments that match no construct in any shipped config: {stale}"


def test_every_acknowledgment_has_a_reason() -> None:
    for ack in ACKNOWLEDGMENTS:
        assert len(ack.reason) > 40, ack


def test_an_unacknowledged_finding_fails_synth(tmp_path: Path) -> None:
    app = entry.create_app(outdir=str(tmp_path), context=entry.cdk_json_context())
    promotion = load_promotions(ROOT / "config")["staging"]  # dev's registry deploys to staging's endpoint
    stage = EnvironmentStage(app, load_config(ROOT / "config" / "staging.yaml"), promotion)
    # An unencrypted, unlogged, unversioned bucket: several packs must object.
    s3.CfnBucket(stage.foundation, "NonCompliant")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    violations = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }
    rules = {rule for rule, _ in violations}
    assert "AwsSolutions-S1" in rules
    assert "NIST.800.53.R5-S3BucketVersioningEnabled" in rules
    assert "HIPAA.Security-S3BucketLoggingEnabled" in rules
    # Only the new bucket is reported: everything else stays acknowledged.
    assert {where for _, where in violations} == {"staging/Foundation/NonCompliant"}


@pytest.mark.parametrize(
    ("configs", "regions", "partition"),
    [
        ("config", {"eu-west-1": "us-gov-west-1"}, "aws-us-gov"),
        # Model Monitor (multi-account staging) has no GovCloud image in the SDK's table; China has one.
        ("config/examples/multi-account", {"eu-west-1": "cn-north-1", "eu-central-1": "cn-northwest-1"}, "aws-cn"),
    ],
)
def test_the_shipped_configs_pass_the_gate_in_another_partition(
    tmp_path: Path, configs: str, regions: dict[str, str], partition: str
) -> None:
    # IAM5 findings name exact ARNs: the acknowledgments must follow the partition the ARNs are built in.
    from tests.conftest import synthesize

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for path in sorted((ROOT / configs).glob("*.yaml")):
        text = path.read_text().replace("arn:aws:", f"arn:{partition}:")
        for commercial, region in regions.items():
            text = text.replace(commercial, region)
        (config_dir / path.name).write_text(text)
    app = synthesize(tmp_path / "cdk.out", config_dir)  # raises ValidationFailed on an unacknowledged finding
    assert {stage.config.partition for stage in app.stages.values()} == {partition}
    commercial = [
        f"{env}/{stack}"
        for env, stacks in app.templates.items()
        for stack, template in stacks.items()
        if "arn:aws:" in json.dumps(template)
    ]
    assert not commercial, f"ARNs of the commercial partition in: {commercial}"


def test_acknowledgments_are_written_into_templates_for_auditors(single_account) -> None:
    template = single_account.templates["dev"]["Foundation"]
    reasons = [
        rule["reason"]
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert reasons
    assert any("SSE-S3" in reason for reason in reasons)
    skips = [
        skip
        for resource in template["Resources"].values()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert {skip["id"] for skip in skips} == {"CKV_AWS_18", "CKV_AWS_32", "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"}


def test_resource_star_is_used_only_where_the_api_requires_it(single_account) -> None:
    # The allow-list above must not hide grants: every listed action is actually used with "*".
    used = set()
    for stacks in single_account.templates.values():
        for template in stacks.values():
            for _, statement in _iam_statements(template):
                resources = statement.get("Resource", [])
                if "*" in (resources if isinstance(resources, list) else [resources]):
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    used.update(actions)
    assert used == set(RESOURCE_STAR_ALLOWED)


def _iam_statements(template: dict):
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in props["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement
            for arn in props.get("ManagedPolicyArns", []):
                assert "FullAccess" not in json.dumps(arn), f"{logical_id} attaches {arn}"
        elif resource["Type"] == "AWS::Lambda::Function" and "Policies" in props:
            raise AssertionError(f"{logical_id}: inline policies on a function")


# Resource "*" is allowed only for these actions: IAM supports no resource-level permissions for them.
_LIST = "a List/Search call: IAM has no resource-level permissions for it"
RESOURCE_STAR_ALLOWED: dict[str, str] = {
    **{
        f"sagemaker:{name}": _LIST
        for name in (
            "ListApps",
            "ListSpaces",
            "ListUserProfiles",
            "ListDomains",
            "ListTrainingJobs",
            "ListProcessingJobs",
            "ListPipelines",
            "ListModelPackageGroups",
            "ListModels",
            "ListEndpoints",
            "ListEndpointConfigs",
            "ListModelPackages",
            "Search",
        )
    },
    "ecr:GetAuthorizationToken": "returns a registry-wide token; it takes no resource",
    **{
        f"ec2:{name}": "Describe* calls take no resource; VPC Lambdas and VPC jobs need them for their ENIs"
        for name in (
            "DescribeNetworkInterfaces",
            "DescribeVpcs",
            "DescribeDhcpOptions",
            "DescribeSubnets",
            "DescribeSecurityGroups",
        )
    },
    "cloudwatch:PutMetricData": (
        "takes no resource; limited by condition to SageMaker's metric namespaces, or to the platform's "
        "monitoring namespace"
    ),
    **{
        f"states:{name}": "takes a task token, not a resource; who may decide is whoever may read the token"
        for name in ("SendTaskSuccess", "SendTaskFailure")
    },
    # Step Functions' documented logging and tracing policy (CDK grants it to a state machine's role).
    **{
        action: "log delivery and X-Ray calls take no resource (Step Functions', and the platform's functions' traces)"
        for action in (
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
        )
    },
    **{
        f"application-autoscaling:{name}": "Application Auto Scaling's Describe calls take no resource"
        for name in ("DescribeScalableTargets", "DescribeScalingPolicies")
    },
}


@pytest.mark.parametrize("which", ["single_account", "multi_account"])
def test_least_privilege_in_every_template(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env, stacks in app.templates.items():
        for stack, template in stacks.items():
            for logical_id, statement in _iam_statements(template):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert "*" not in actions, f"{env}/{stack}/{logical_id}: Action *"
                assert not any(a.endswith(":*") for a in actions), f"{env}/{stack}/{logical_id}: {actions}"
                resources = statement.get("Resource", [])
                resources = resources if isinstance(resources, list) else [resources]
                if "*" in resources:
                    unexplained = [a for a in actions if a not in RESOURCE_STAR_ALLOWED]
                    assert not unexplained, f"{env}/{stack}/{logical_id}: Resource * for {unexplained}"
