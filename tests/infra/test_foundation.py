"""Template assertions for every security property of the foundation, by type and property, never logical id."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from tests.infra.references import logical_id_of, referenced

ENVS = ("dev", "staging", "prod")


def _resources(app, env: str, type_: str) -> dict[str, dict]:
    return {k: v for k, v in app.templates[env]["Foundation"]["Resources"].items() if v["Type"] == type_}


@pytest.mark.parametrize("env", ENVS)
def test_keys_rotate(single_account, env: str) -> None:
    template = single_account.template(env, "Foundation")
    template.resource_count_is("AWS::KMS::Key", 2)
    template.all_resources_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_logs_key_admits_cloudwatch_logs_only_for_this_accounts_log_groups(single_account) -> None:
    template = single_account.template("dev", "Foundation")
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "Description": Match.string_like_regexp("CloudWatch Logs"),
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": Match.string_like_regexp(
                                            "^arn:aws:logs:eu-west-1:111111111111:log-group:\\*$"
                                        )
                                    }
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


@pytest.mark.parametrize("env", ENVS)
def test_no_key_policy_statement_opens_the_key_to_everyone(single_account, multi_account, env: str) -> None:
    for app in (single_account, multi_account):
        for key in _resources(app, env, "AWS::KMS::Key").values():
            for statement in key["Properties"]["KeyPolicy"]["Statement"]:
                assert statement["Principal"] != "*"
                assert statement["Principal"] != {"AWS": "*"}


@pytest.mark.parametrize("env", ENVS)
def test_every_bucket_is_private_versioned_and_encrypted(single_account, env: str) -> None:
    buckets = _resources(single_account, env, "AWS::S3::Bucket")
    assert len(buckets) == 4
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any("NoncurrentVersionExpiration" in r and "AbortIncompleteMultipartUpload" in r for r in rules)


@pytest.mark.parametrize("env", ENVS)
def test_data_buckets_use_the_data_key_and_log_to_the_log_bucket(single_account, env: str) -> None:
    buckets = _resources(single_account, env, "AWS::S3::Bucket")
    keys = _resources(single_account, env, "AWS::KMS::Key")
    data_key = next(k for k, v in keys.items() if "S3, ECR" in v["Properties"]["Description"])
    log_buckets = [k for k, v in buckets.items() if "LoggingConfiguration" not in v["Properties"]]
    assert len(log_buckets) == 1
    log_bucket = log_buckets[0]
    # S3 server access logging can only write to SSE-S3 buckets.
    sse = buckets[log_bucket]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    prefixes = set()
    for name, bucket in buckets.items():
        if name == log_bucket:
            continue
        sse = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"] == {
            "KMSMasterKeyID": {"Fn::GetAtt": [data_key, "Arn"]},
            "SSEAlgorithm": "aws:kms",
        }
        assert sse["BucketKeyEnabled"] is True
        logging = bucket["Properties"]["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": log_bucket}
        prefixes.add(logging["LogFilePrefix"])
    assert prefixes == {"data/", "artifacts/", "monitoring/"}


@pytest.mark.parametrize("env", ENVS)
def test_every_bucket_policy_denies_plain_http(single_account, env: str) -> None:
    policies = _resources(single_account, env, "AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )


def test_access_log_bucket_admits_only_the_logging_service_from_this_account(single_account) -> None:
    template = single_account.template("dev", "Foundation")
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Principal": {"Service": "logging.s3.amazonaws.com"},
                                "Action": "s3:PutObject",
                                "Condition": Match.object_like({"StringEquals": {"aws:SourceAccount": "111111111111"}}),
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize(("env", "policy"), [("dev", "Delete"), ("staging", "Retain"), ("prod", "Retain")])
def test_removal_policy_follows_config(single_account, env: str, policy: str) -> None:
    for type_ in ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::ECR::Repository", "AWS::Logs::LogGroup"):
        for resource in _resources(single_account, env, type_).values():
            assert resource["DeletionPolicy"] == policy, type_
    auto_delete = _resources(single_account, env, "Custom::S3AutoDeleteObjects")
    assert len(auto_delete) == (4 if env == "dev" else 0)


@pytest.mark.parametrize("env", ENVS)
def test_repositories_scan_are_immutable_encrypted_and_expire_untagged(single_account, env: str) -> None:
    template = single_account.template(env, "Foundation")
    template.resource_count_is("AWS::ECR::Repository", 2)
    template.all_resources_properties(
        "AWS::ECR::Repository",
        {
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "IMMUTABLE",
            "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": Match.any_value()},
            "LifecyclePolicy": {
                "LifecyclePolicyText": Match.string_like_regexp('"tagStatus":"untagged"'),
            },
        },
    )
    names = sorted(
        r["Properties"]["RepositoryName"] for r in _resources(single_account, env, "AWS::ECR::Repository").values()
    )
    assert names == [f"mlops-{env}/inference", f"mlops-{env}/training"]


@pytest.mark.parametrize("env", ENVS)
def test_network_has_no_route_to_the_internet(single_account, env: str) -> None:
    template = single_account.template(env, "Foundation")
    for type_ in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EgressOnlyInternetGateway"):
        template.resource_count_is(type_, 0)
    template.resource_count_is("AWS::EC2::Route", 0)
    for subnet in _resources(single_account, env, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False


SERVICES = {
    "sagemaker_api": "com.amazonaws.eu-west-1.sagemaker.api",
    "sagemaker_runtime": "com.amazonaws.eu-west-1.sagemaker.runtime",
    "sagemaker_studio": "aws.sagemaker.eu-west-1.studio",
    "sagemaker_notebook": "aws.sagemaker.eu-west-1.notebook",
    "ecr_api": "com.amazonaws.eu-west-1.ecr.api",
    "ecr_docker": "com.amazonaws.eu-west-1.ecr.dkr",
    "logs": "com.amazonaws.eu-west-1.logs",
    "monitoring": "com.amazonaws.eu-west-1.monitoring",
    "sts": "com.amazonaws.eu-west-1.sts",
    "kms": "com.amazonaws.eu-west-1.kms",
    "ssm": "com.amazonaws.eu-west-1.ssm",
}


@pytest.mark.parametrize("env", ENVS)
def test_the_configured_interface_endpoints_in_the_configured_zones(single_account, env: str) -> None:
    net = single_account.stages[env].config.networking
    interface = [
        e["Properties"]
        for e in _resources(single_account, env, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    assert sorted(e["ServiceName"] for e in interface) == sorted(SERVICES[k] for k in net.interface_endpoints)
    assert all(e["PrivateDnsEnabled"] is True for e in interface)
    zones = net.endpoint_zones or len(net.availability_zones)
    assert {len(e["SubnetIds"]) for e in interface} == {zones}
    gateway = [
        e["Properties"]
        for e in _resources(single_account, env, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert len(gateway) == 1 and gateway[0]["ServiceName"]["Fn::Join"][1][-1] == ".s3"


def test_dev_keeps_its_endpoints_to_one_zone_and_staging_and_prod_have_every_one(single_account) -> None:
    dev = single_account.stages["dev"].config.networking
    assert dev.endpoint_zones == 1 and "sagemaker_runtime" not in dev.interface_endpoints
    for env in ("staging", "prod"):
        net = single_account.stages[env].config.networking
        assert net.endpoint_zones is None and sorted(net.interface_endpoints) == sorted(SERVICES)


@pytest.mark.parametrize("env", ENVS)
def test_endpoint_security_group_admits_https_from_the_vpc_only(single_account, env: str) -> None:
    groups = [
        g
        for g in _resources(single_account, env, "AWS::EC2::SecurityGroup").values()
        if "service endpoints" in g["Properties"]["GroupDescription"]
    ]
    assert len(groups) == 1
    ingress = groups[0]["Properties"]["SecurityGroupIngress"]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in ingress] == [("tcp", 443, 443)]
    vpc = next(iter(_resources(single_account, env, "AWS::EC2::VPC").values()))
    assert ingress[0]["CidrIp"] == vpc["Properties"]["CidrBlock"]
    # No egress: CDK writes a single rule that matches nothing.
    assert groups[0]["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"


@pytest.mark.parametrize("env", ENVS)
def test_flow_logs_capture_all_traffic_into_an_encrypted_log_group(single_account, env: str) -> None:
    stage = single_account.stages[env]
    (flow_log,) = [r["Properties"] for r in _resources(single_account, env, "AWS::EC2::FlowLog").values()]
    assert (flow_log["ResourceType"], flow_log["TrafficType"]) == ("VPC", "ALL")
    assert referenced(single_account, env, "Foundation", flow_log["ResourceId"]) == logical_id_of(
        stage.foundation.network.vpc
    )
    # Into its own log group, encrypted with the logs key and kept as long as config says.
    _, group_id = referenced(single_account, env, "Foundation", flow_log["LogGroupName"])
    group = single_account.templates[env]["Foundation"]["Resources"][group_id]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert referenced(single_account, env, "Foundation", group["Properties"]["KmsKeyId"]) == logical_id_of(
        stage.foundation.keys.logs_key
    )
    assert group["Properties"]["RetentionInDays"] == stage.config.networking.flow_log_retention_days


def test_default_security_group_is_stripped(single_account) -> None:
    single_account.template("prod", "Foundation").resource_count_is("Custom::VpcRestrictDefaultSG", 1)


DISCOVERY_KEYS = {
    "kms/data-key-arn",
    "kms/logs-key-arn",
    "s3/data-bucket",
    "s3/artifacts-bucket",
    "s3/monitoring-bucket",
    "ecr/training-repository-uri",
    "ecr/inference-repository-uri",
    "network/vpc-id",
    "network/private-subnet-ids",
}


@pytest.mark.parametrize("env", ENVS)
def test_discovery_parameters_under_the_environment_prefix(single_account, env: str) -> None:
    names = {p["Properties"]["Name"] for p in _resources(single_account, env, "AWS::SSM::Parameter").values()}
    assert names == {f"/mlops-{env}/foundation/{key}" for key in DISCOVERY_KEYS}


def test_prod_stack_has_termination_protection(single_account) -> None:
    assert single_account.stages["prod"].foundation.termination_protection is True
    assert single_account.stages["dev"].foundation.termination_protection is False


def test_stacks_are_named_from_the_prefix_and_pinned_to_account_and_region(single_account) -> None:
    stack = single_account.stages["staging"].foundation
    assert stack.stack_name == "mlops-staging-foundation"
    assert (stack.account, stack.region) == ("111111111111", "eu-west-1")


def test_tags_from_config_reach_resources(single_account) -> None:
    single_account.template("prod", "Foundation").has_resource_properties(
        "AWS::S3::Bucket", {"Tags": Match.array_with([{"Key": "environment", "Value": "prod"}])}
    )


# --- multi-account ---------------------------------------------------------------------------------


def test_multi_account_stacks_target_their_own_accounts(multi_account) -> None:
    accounts = {name: stage.foundation.account for name, stage in multi_account.stages.items()}
    assert accounts == {"dev": "222222222222", "staging": "333333333333", "prod": "444444444444"}
    assert multi_account.stages["prod"].foundation.region == "eu-central-1"


def test_tooling_account_reaches_the_data_key_only_through_s3_and_ecr(multi_account) -> None:
    keys = _resources(multi_account, "staging", "AWS::KMS::Key").values()
    statements = [
        s
        for k in keys
        for s in k["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "ToolingAccountThroughS3AndEcr"
    ]
    assert len(statements) == 1
    statement = statements[0]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"AWS": "arn:aws:iam::555555555555:root"}
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": ["s3.eu-west-1.amazonaws.com", "ecr.eu-west-1.amazonaws.com"]}
    }
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:DescribeKey"]  # it reads; it writes nothing


def test_tooling_account_may_pull_images_and_read_artifacts_but_write_neither(multi_account) -> None:
    for repo in _resources(multi_account, "dev", "AWS::ECR::Repository").values():
        statements = repo["Properties"]["RepositoryPolicyText"]["Statement"]
        (grant,) = [s for s in statements if s["Effect"] == "Allow" and "555555555555" in str(s["Principal"])]
        assert grant["Principal"] == {"AWS": "arn:aws:iam::555555555555:root"}
        assert sorted(grant["Action"]) == [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
        # The push guard exempts no account: only CI's roles push.
        (deny,) = [s for s in statements if s.get("Sid") == "OnlyCiPushes"]
        assert set(deny["Condition"]) == {"ArnNotEquals"}
    bucket_policies = _resources(multi_account, "dev", "AWS::S3::BucketPolicy").values()
    (read,) = [
        s
        for p in bucket_policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "555555555555" in str(s.get("Principal"))
    ]
    assert read["Sid"] == "ToolingAccountRead" and sorted(read["Action"]) == ["s3:GetObject", "s3:ListBucket"]


def test_accounts_serving_the_registrys_versions_may_pull_its_images_and_read_its_model_versions(multi_account) -> None:
    # dev's registry deploys to staging, in account 333333333333: staging's roles (and only theirs) read.
    staging_roles = {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::333333333333:role/mlops-staging-*"}}
    for repo in _resources(multi_account, "dev", "AWS::ECR::Repository").values():
        statements = repo["Properties"]["RepositoryPolicyText"]["Statement"]
        (pull,) = [s for s in statements if "333333333333" in str(s["Principal"])]
        assert pull["Effect"] == "Allow" and pull["Condition"] == staging_roles
        assert sorted(pull["Action"]) == [
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
    key_statements = [
        s
        for k in _resources(multi_account, "dev", "AWS::KMS::Key").values()
        for s in k["Properties"]["KeyPolicy"]["Statement"]
        if "333333333333" in str(s["Principal"])
    ]
    assert len(key_statements) == 1 and sorted(key_statements[0]["Action"]) == ["kms:Decrypt", "kms:DescribeKey"]
    assert key_statements[0]["Condition"]["ArnLike"] == staging_roles["ArnLike"]
    assert key_statements[0]["Condition"]["StringEquals"]["kms:ViaService"] == [
        "s3.eu-west-1.amazonaws.com",
        "ecr.eu-west-1.amazonaws.com",
    ]
    bucket_reads = [
        s
        for p in _resources(multi_account, "dev", "AWS::S3::BucketPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "333333333333" in str(s.get("Principal"))
    ]
    assert len(bucket_reads) == 1 and bucket_reads[0]["Action"] == "s3:GetObject"
    assert bucket_reads[0]["Resource"]["Fn::Join"][1][-1] == "/mlops-dev-model-build/*"
    # prod (another region) is fed by its own registry: dev grants it nothing.
    assert "444444444444" not in str(multi_account.templates["dev"]["Foundation"])


def test_single_account_grants_nothing_across_accounts(single_account) -> None:
    for env in ENVS:
        text = str(single_account.templates[env]["Foundation"])
        assert "555555555555" not in text
        for repo in _resources(single_account, env, "AWS::ECR::Repository").values():
            # The repository policy only refuses (pushes by anyone but CI); it grants nothing.
            statements = repo["Properties"]["RepositoryPolicyText"]["Statement"]
            assert {s["Effect"] for s in statements} == {"Deny"}


def test_imported_vpc_is_used_by_id_and_not_created(multi_account) -> None:
    template = multi_account.template("prod", "Foundation")
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.resource_count_is("AWS::EC2::Subnet", 0)
    template.all_resources_properties("AWS::EC2::VPCEndpoint", {"VpcId": "vpc-0a1b2c3d4e5f60718"})
    template.has_resource_properties("AWS::EC2::FlowLog", {"ResourceId": "vpc-0a1b2c3d4e5f60718", "TrafficType": "ALL"})
    template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {
            "VpcEndpointType": "Gateway",
            "RouteTableIds": ["rtb-0a1b2c3d4e5f60721", "rtb-0a1b2c3d4e5f60722", "rtb-0a1b2c3d4e5f60723"],
        },
    )


@pytest.mark.parametrize("which", ["single_account", "multi_account"])
def test_one_environment_per_account_owns_sagemakers_log_groups_with_key_and_retention(
    which: str, request: pytest.FixtureRequest
) -> None:
    from stacks.sagemaker_access import SAGEMAKER_LOG_GROUPS

    app = request.getfixturevalue(which)
    owners: dict[str, list[str]] = {}
    for env, stage in app.stages.items():
        groups = {
            resource["Properties"]["LogGroupName"]: resource["Properties"]
            for resource in app.templates[env]["Foundation"]["Resources"].values()
            if resource["Type"] == "AWS::Logs::LogGroup" and "LogGroupName" in resource["Properties"]
        }
        owned = {name: props for name, props in groups.items() if name.startswith("/aws/sagemaker/")}
        if stage.config.owns_sagemaker_log_groups:
            owners.setdefault(stage.config.account, []).append(env)
            assert set(owned) == set(SAGEMAKER_LOG_GROUPS)
            for props in owned.values():
                assert props["RetentionInDays"] == stage.config.retention.log_retention_days
                assert referenced(app, env, "Foundation", props["KmsKeyId"]) == logical_id_of(
                    stage.foundation.keys.logs_key
                )
        else:
            assert not owned
    accounts = {stage.config.account for stage in app.stages.values()}
    assert {account: len(envs) for account, envs in owners.items()} == dict.fromkeys(accounts, 1)
