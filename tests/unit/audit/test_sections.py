"""Each report section on small hand-made templates: what it must list, flag or call out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.audit.conftest import resource, write_assembly
from tools.audit.document import Paragraph, Table, to_html, to_markdown
from tools.audit.encryption import encryption_section
from tools.audit.iam import iam_section
from tools.audit.inventory import inventory_section
from tools.audit.network import network_section

KEY = resource("AWS::KMS::Key", "dev/Base/Key/Resource", {"EnableKeyRotation": True})


def _rows(section: object, column: str) -> list[tuple[list[str], str]]:
    """Every (cells, flag) of the section's tables that have ``column``."""
    out = []
    for block in section.blocks:  # type: ignore[attr-defined]
        if isinstance(block, Table) and column in block.columns:
            out += [(row.cells, row.flag) for row in block.rows]
    return out


def test_given_two_stacks_when_inventoried_then_every_resource_is_listed_once_with_path_and_logical_id(
    tmp_path: Path,
) -> None:
    env = write_assembly(
        tmp_path,
        {
            "Base": {"Key": KEY, "Bucket": resource("AWS::S3::Bucket", "dev/Base/Bucket/Resource")},
            "App": {"Queue": resource("AWS::SQS::Queue", "dev/App/Queue/Resource")},
        },
    )
    section, data = inventory_section(env)
    rows = _rows(section, "construct path")
    assert sorted(cells[2] for cells, _ in rows) == [
        "dev/App/Queue/Resource",
        "dev/Base/Bucket/Resource",
        "dev/Base/Key/Resource",
    ]
    assert {cells[1] for cells, _ in rows} == {"Key", "Bucket", "Queue"}
    assert set(data) == {"Base/Key", "Base/Bucket", "App/Queue"}
    assert "3 resources in 2 stacks" in section.blocks[0].text  # type: ignore[union-attr]


def test_given_a_bucket_without_encryption_when_audited_then_it_is_listed_as_unencrypted(tmp_path: Path) -> None:
    env = write_assembly(
        tmp_path,
        {
            "Base": {
                "Key": KEY,
                "Plain": resource("AWS::S3::Bucket", "dev/Base/Plain/Resource"),
                "Sealed": resource(
                    "AWS::S3::Bucket",
                    "dev/Base/Sealed/Resource",
                    {
                        "BucketEncryption": {
                            "ServerSideEncryptionConfiguration": [
                                {
                                    "ServerSideEncryptionByDefault": {
                                        "SSEAlgorithm": "aws:kms",
                                        "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
                                    }
                                }
                            ]
                        }
                    },
                ),
            }
        },
    )
    section, _ = encryption_section(env)
    flags = {cells[0]: (cells[2], flag) for cells, flag in _rows(section, "key or reason")}
    assert flags["dev/Base/Plain/Resource"][1] == "error"
    assert "no encryption" in flags["dev/Base/Plain/Resource"][0]
    assert flags["dev/Base/Sealed/Resource"] == ("customer KMS key Base/Key (rotation on)", "")
    errors = [b.text for b in section.blocks if isinstance(b, Paragraph) and b.flag == "error"]
    assert errors == ["Unencrypted: dev/Base/Plain/Resource (AWS::S3::Bucket): " + flags["dev/Base/Plain/Resource"][0]]


def test_given_a_pipeline_job_without_a_volume_key_when_audited_then_the_job_volume_is_flagged(tmp_path: Path) -> None:
    parameter = resource(
        "AWS::SSM::Parameter",
        "dev/Base/KeyArn/Resource",
        {"Name": "/p/key-arn", "Type": "String", "Value": {"Fn::GetAtt": ["Key", "Arn"]}},
    )
    pipeline = {
        "Steps": [
            {
                "Name": "Train",
                "Type": "Training",
                "Arguments": {
                    "OutputDataConfig": {"KmsKeyId": "{{ssm:/p/key-arn}}", "S3OutputPath": "s3://b/x"},
                    "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
                },
            }
        ]
    }
    env = write_assembly(tmp_path, {"Base": {"Key": KEY, "KeyArn": parameter}}, pipeline=pipeline)
    _, data = encryption_section(env)
    assert data["pipeline step Train (Training): outputs"].startswith("customer KMS key Base/Key (rotation on)")
    assert data["pipeline step Train (Training): volume"].startswith("no KMS key")


def test_given_a_wildcard_statement_when_audited_then_it_is_flagged_with_its_condition(tmp_path: Path) -> None:
    role = resource(
        "AWS::IAM::Role",
        "dev/App/Role/Resource",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}
                ]
            }
        },
    )
    policy = resource(
        "AWS::IAM::Policy",
        "dev/App/Policy/Resource",
        {
            "Roles": [{"Ref": "Role"}],
            "PolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/key"},
                    {
                        "Effect": "Allow",
                        "Action": "cloudwatch:PutMetricData",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"cloudwatch:namespace": "Ours"}},
                    },
                    {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::bucket"},
                    {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::bucket"},
                    {"Effect": "Deny", "Action": "*", "Resource": "*"},
                ]
            },
        },
    )
    env = write_assembly(tmp_path, {"App": {"Role": role, "Policy": policy}})
    section, _ = iam_section(env)
    wildcards = _rows(section, "wildcard")
    assert [(cells[2], cells[4], flag) for cells, flag in wildcards] == [
        ("cloudwatch:PutMetricData", '{"StringEquals": {"cloudwatch:namespace": "Ours"}}', "warn"),
        ("s3:Get*", "(none)", "warn"),
        ("s3:*", "(none)", "error"),
    ]
    trust = _rows(section, "principal")
    assert trust[0][0][2] == "Service: lambda.amazonaws.com"
    grants = [(cells[2], flag) for cells, flag in _rows(section, "effect") if cells[0] == "App/Policy"]
    assert ("s3:GetObject", "") in grants


def test_given_a_security_group_open_to_the_internet_when_audited_then_it_is_called_out(tmp_path: Path) -> None:
    group = resource(
        "AWS::EC2::SecurityGroup",
        "dev/Net/Open/Resource",
        {
            "GroupDescription": "web",
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0"}],
        },
    )
    inner = resource("AWS::EC2::SecurityGroup", "dev/Net/Inner/Resource", {"GroupDescription": "inner"})
    rule = resource(
        "AWS::EC2::SecurityGroupIngress",
        "dev/Net/InnerFromOpen",
        {
            "GroupId": {"Fn::GetAtt": ["Inner", "GroupId"]},
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "SourceSecurityGroupId": {"Fn::GetAtt": ["Open", "GroupId"]},
        },
    )
    env = write_assembly(tmp_path, {"Net": {"Open": group, "Inner": inner, "InnerFromOpen": rule}})
    section, data = network_section(env)
    called_out = _rows(section, "why")
    assert (["Net/Open", "ingress tcp 22 0.0.0.0/0: reachable from the internet"], "error") in called_out
    rules = [(cells[0], cells[4], flag) for cells, flag in _rows(section, "peer")]
    assert ("Net/Inner", "security group Net/Open", "") in rules
    assert data["Net/Open ingress tcp 22 0.0.0.0/0"] == "reachable from the internet"


def test_given_a_private_network_when_audited_then_nothing_is_called_out(tmp_path: Path) -> None:
    group = resource(
        "AWS::EC2::SecurityGroup",
        "dev/Net/Group/Resource",
        {
            "GroupDescription": "x",
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/16"}],
        },
    )
    env = write_assembly(tmp_path, {"Net": {"Group": group}})
    section, _ = network_section(env)
    assert _rows(section, "why") == []


def test_given_a_report_when_rendered_then_html_escapes_and_fetches_nothing_and_markdown_escapes_pipes(
    tmp_path: Path,
) -> None:
    env = write_assembly(tmp_path, {"Base": {"Key": resource("AWS::KMS::Key", "dev/Base/<b>|x</b>/Resource")}})
    section, _ = inventory_section(env)
    from tools.audit.document import Document

    doc = Document("Audit of dev", "sub", [section])
    page = to_html(doc)
    assert "<b>|x</b>" not in page and "&lt;b&gt;|x&lt;/b&gt;" in page
    for attribute in ("src=", 'href="http', "@import", "url("):
        assert attribute not in page
    assert '<a href="#inventory">' in page
    markdown = to_markdown(doc)
    assert "dev/Base/<b>\\|x</b>/Resource" in markdown


@pytest.mark.parametrize("bad", ["not json", ""])
def test_given_a_broken_template_when_loaded_then_the_error_names_the_file(tmp_path: Path, bad: str) -> None:
    from tools.audit.assembly import AssemblyError, load_assembly

    env = write_assembly(tmp_path, {"Base": {"Key": KEY}})
    template = env.stacks[0].template_file
    template.write_text(bad, encoding="utf-8")
    with pytest.raises(AssemblyError, match=template.name):
        load_assembly(tmp_path)


def test_given_templates_without_construct_paths_when_loaded_then_the_error_says_to_use_the_cli(tmp_path: Path) -> None:
    from tools.audit.assembly import AssemblyError, load_assembly

    env = write_assembly(tmp_path, {"Base": {"Key": KEY}})
    template = env.stacks[0].template_file
    template.write_text('{"Resources": {"Key": {"Type": "AWS::KMS::Key"}}}', encoding="utf-8")
    with pytest.raises(AssemblyError, match="no resource carries aws:cdk:path metadata"):
        load_assembly(tmp_path)
