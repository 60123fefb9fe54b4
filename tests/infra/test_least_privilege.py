"""Least privilege as an auditor reads it: every policy in every template, resource policies and CDK's raw
resources included.

The rule packs see only what their rules look for; these tests read each statement and ask:
- does it reach another environment's names (probe ARNs of the other environments, matched the way
  IAM matches wildcards)?
- may a person write what CI, the pipeline or the registry reads, or push an image?
- does a service's trust policy name the account it acts for, where the service supports it?
- does every VPC endpoint have a policy that keeps outside credentials out?
- are the acknowledged findings still reported on the paths they name?
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from stacks.compliance.acknowledgments import ACKNOWLEDGMENTS, CHECKOV
from stacks.config import EnvironmentConfig
from stacks.principals import artifact_writer_arns, ci_protected_prefixes, image_pusher_arns
from tests.infra.references import logical_id_of

APPS = ["single_account", "multi_account"]

# Resource types whose properties hold a policy document, and where.
POLICY_PROPERTIES = {
    "AWS::IAM::Policy": ("PolicyDocument",),
    "AWS::IAM::ManagedPolicy": ("PolicyDocument",),
    "AWS::S3::BucketPolicy": ("PolicyDocument",),
    "AWS::ECR::Repository": ("RepositoryPolicyText",),
    "AWS::EC2::VPCEndpoint": ("PolicyDocument",),
    "AWS::KMS::Key": ("KeyPolicy",),
    "AWS::SQS::QueuePolicy": ("PolicyDocument",),
    "AWS::SageMaker::ModelPackageGroup": ("ModelPackageGroupPolicy",),
    "AWS::SNS::TopicPolicy": ("PolicyDocument",),
}
# Resource types whose property is one statement (not a document).
STATEMENT_PROPERTIES = {"AWS::Events::EventBusPolicy": "Statement"}

# Services whose role trust supports aws:SourceAccount (and which ones we also pin by aws:SourceArn).
TRUST_SOURCE_ACCOUNT = {
    "sagemaker.amazonaws.com",
    "codebuild.amazonaws.com",
    "codepipeline.amazonaws.com",
    "events.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
    "states.amazonaws.com",
    "scheduler.amazonaws.com",
}
TRUST_SOURCE_ARN = {
    "codebuild.amazonaws.com",
    "codepipeline.amazonaws.com",
    "vpc-flow-logs.amazonaws.com",
    "states.amazonaws.com",
    "scheduler.amazonaws.com",
}
# Lambda documents no aws:SourceAccount/aws:SourceArn for assuming a function's execution role (its
# lambda:SourceFunctionArn key is for identity policies): each function has a role of its own instead.
TRUST_WITHOUT_SOURCE = {
    "lambda.amazonaws.com": "no source keys documented for execution-role assumption",
    # The endpoint stack's service role is only ever passed (iam:PassRole, held by the deployer role alone),
    # and a role cannot be passed across accounts: CloudFormation documents no source keys for it.
    "cloudformation.amazonaws.com": "a passed service role; no source keys documented",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _flatten(value: Any, config: EnvironmentConfig) -> str:
    """A policy value as the string IAM would see, with this stack's own resources as ``{OWN}``.

    References (Ref, GetAtt, imports) point at resources of this environment, so no probe of another
    environment can match them; pseudo parameters become their values.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            pseudo = {
                "AWS::Partition": "aws",
                "AWS::Region": config.region,
                "AWS::AccountId": config.account,
                "AWS::URLSuffix": "amazonaws.com",
            }
            return pseudo.get(argument, "{OWN}")
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(_flatten(part, config) for part in parts)
    return "{OWN}"


def _statements(template: dict) -> Iterator[tuple[str, str, dict]]:
    """(logical id, kind, statement) of every policy in a template; kind is "trust" for role trust."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for key in POLICY_PROPERTIES.get(resource["Type"], ()):
            if key in props:
                for statement in _as_list(props[key]["Statement"]):
                    yield logical_id, "policy", statement
        if resource["Type"] in STATEMENT_PROPERTIES:
            yield logical_id, "policy", props[STATEMENT_PROPERTIES[resource["Type"]]]
        if resource["Type"] == "AWS::IAM::Role":
            for statement in props["AssumeRolePolicyDocument"]["Statement"]:
                yield logical_id, "trust", statement
            for policy in props.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, "policy", statement


def _probes(own: EnvironmentConfig, others: list[EnvironmentConfig]) -> list[str]:
    """ARNs that belong to the other environments (or to whichever environment's pipeline ran)."""
    probes = []
    for other in others:
        sm = f"arn:aws:sagemaker:{other.region}:{other.account}"
        logs = f"arn:aws:logs:{other.region}:{other.account}:log-group"
        probes += [
            f"{sm}:training-job/{other.build_pipeline_name}-train-k3h2",
            f"{sm}:processing-job/{other.build_pipeline_name}-preprocess-k3h2",
            f"{sm}:training-job/{other.name_prefix}-experiment-1",
            f"{sm}:pipeline/{other.build_pipeline_name}",
            f"{sm}:model-package/{other.model_package_group_name}/1",
            f"{sm}:model-package-group/{other.model_package_group_name}",
            f"{logs}:/aws/sagemaker/TrainingJobs:log-stream:{other.build_pipeline_name}-train-k3h2/algo-1",
            f"{logs}:/aws/sagemaker/ProcessingJobs:log-stream:{other.name_prefix}-experiment-1/algo-1",
            f"arn:aws:ssm:{other.region}:{other.account}:parameter/{other.name_prefix}/foundation/x",
            f"arn:aws:ecr:{other.region}:{other.account}:repository/{other.name_prefix}/training",
            *(f"arn:aws:s3:::{other.bucket_name(p)}/x" for p in ("data", "artifacts", "monitoring")),
        ]
    # Names that SageMaker chooses by default belong to no environment in particular.
    sm = f"arn:aws:sagemaker:{own.region}:{own.account}"
    probes += [f"{sm}:training-job/pipelines-abc123-Train-k3h2", f"{sm}:processing-job/pipelines-abc123-x"]
    # Network interfaces and subnets of another VPC in the account, by id.
    ec2 = f"arn:aws:ec2:{own.region}:{own.account}"
    probes += [f"{ec2}:network-interface/eni-0ther", f"{ec2}:subnet/subnet-0ther"]
    return probes


def _reaches(statement: dict, probe: str, config: EnvironmentConfig) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    # An ec2:Vpc condition on this environment's VPC keeps interfaces of other VPCs out.
    if ":network-interface/" in probe and "ec2:Vpc" in json.dumps(statement.get("Condition", {})):
        return False
    resources = [_flatten(r, config) for r in _as_list(statement.get("Resource", []))]
    return any(r != "*" and fnmatchcase(probe, r) for r in resources)


def _promoted(source: EnvironmentConfig) -> set[str]:
    """The probes of a registry environment that the endpoints it deploys to must read: its versions and
    their images (an endpoint serves the source's model package; its monitor runs the source's image)."""
    sm = f"arn:aws:sagemaker:{source.region}:{source.account}"
    return {
        f"{sm}:model-package/{source.model_package_group_name}/1",
        f"arn:aws:ecr:{source.region}:{source.account}:repository/{source.name_prefix}/training",
    }


@pytest.mark.parametrize("which", APPS)
def test_no_statement_reaches_another_environments_names(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    configs = {env: stage.config for env, stage in app.stages.items()}
    for env, stacks in app.templates.items():
        own = configs[env]
        probes = _probes(own, [c for name, c in configs.items() if name != env])
        source = app.stages[env].promotion.source
        # The Endpoint stack alone reads what its registry promotes; nothing else reaches another environment.
        promoted = _promoted(source) if source is not None and source.name != env else set()
        for stack, template in stacks.items():
            allowed = promoted if stack == "Endpoint" else set()
            for logical_id, _, statement in _statements(template):
                reached = [p for p in probes if _reaches(statement, p, own) and p not in allowed]
                assert not reached, f"{env}/{stack}/{logical_id} {statement.get('Sid')}: reaches {reached}"


def test_the_probes_catch_the_patterns_this_review_found(single_account) -> None:
    # The test above must be able to fail: the wildcards of the first version reach other environments.
    dev, staging = single_account.stages["dev"].config, single_account.stages["staging"].config
    probes = _probes(dev, [staging])
    for pattern in (
        "arn:aws:sagemaker:eu-west-1:111111111111:training-job/pipelines-*",
        "arn:aws:sagemaker:eu-west-1:111111111111:training-job/*",
        "arn:aws:logs:eu-west-1:111111111111:log-group:/aws/sagemaker/*",
        "arn:aws:ec2:eu-west-1:111111111111:subnet/*",
        "arn:aws:ec2:eu-west-1:111111111111:network-interface/*",
    ):
        statement = {"Effect": "Allow", "Action": "x:Y", "Resource": pattern}
        assert any(_reaches(statement, p, dev) for p in probes), pattern


def _policy_of(app: Any, env: str, construct: Any) -> list[dict]:
    stack, logical_id = logical_id_of(construct)
    props = app.templates[env][stack]["Resources"][logical_id]["Properties"]
    return _as_list(props["PolicyDocument"]["Statement"])


WRITE_ACTIONS = ("s3:PutObject", "s3:Put*", "s3:*", "*")
PUSH_ACTIONS = ("ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload")


@pytest.mark.parametrize("which", APPS)
def test_people_cannot_write_what_ci_or_the_registry_reads(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env, stage in app.stages.items():
        if stage.studio is None:
            continue
        config = stage.config
        protected = [
            f"arn:aws:s3:::{config.bucket_name('artifacts')}/{prefix}/x" for prefix in ci_protected_prefixes(config)
        ]
        for policy in stage.studio.personas.node.children:
            if not policy.node.id.endswith("Policy"):
                continue
            for statement in _policy_of(app, env, policy):
                actions = _as_list(statement["Action"])
                assert not set(actions) & {*PUSH_ACTIONS, "ecr:*"}, f"{env} {policy.node.id} pushes images"
                assert "sagemaker:CreateModelPackage" not in actions
                if set(actions) & set(WRITE_ACTIONS):
                    reached = [p for p in protected if _reaches(statement, p, config)]
                    assert not reached, f"{env} {policy.node.id} {statement.get('Sid')} writes {reached}"
                if "sagemaker:UpdateModelPackage" in actions:
                    assert statement["Condition"] == {
                        "StringEquals": {"sagemaker:ModelApprovalStatus": ["Approved", "Rejected"]}
                    }


@pytest.mark.parametrize("which", APPS)
def test_bucket_and_repository_policies_let_only_ci_write_and_push(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env, stage in app.stages.items():
        config = stage.config
        buckets = stage.foundation.buckets
        (deny,) = [
            s
            for s in _policy_of(app, env, buckets.artifacts.policy)
            if s.get("Sid") == "OnlyCiWritesCiAndRegistryPaths"
        ]
        assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"} and deny["Action"] == "s3:PutObject"
        # No account is exempt, the tooling account's included (it runs no CI).
        assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": artifact_writer_arns(config)}}
        denied = [_flatten(r, config) for r in _as_list(deny["Resource"])]
        assert sorted(denied) == sorted(f"{{OWN}}/{prefix}/*" for prefix in ci_protected_prefixes(config))
        for bucket in (buckets.data, buckets.artifacts, buckets.monitoring):
            sids = {s.get("Sid") for s in _policy_of(app, env, bucket.policy)}
            assert {"DenyOtherEncryption", "DenyOtherKeys"} <= sids, f"{env} {bucket.node.id}: data key not required"
        for repository in (stage.foundation.repositories.training, stage.foundation.repositories.inference):
            stack, logical_id = logical_id_of(repository)
            statements = app.templates[env][stack]["Resources"][logical_id]["Properties"]["RepositoryPolicyText"]
            (only_ci,) = [s for s in statements["Statement"] if s.get("Sid") == "OnlyCiPushes"]
            assert only_ci["Effect"] == "Deny" and sorted(only_ci["Action"]) == sorted(PUSH_ACTIONS)
            assert only_ci["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": image_pusher_arns(config)}


@pytest.mark.parametrize("which", APPS)
def test_every_service_trust_names_the_account_it_acts_for(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env, stacks in app.templates.items():
        account = app.stages[env].config.account
        for stack, template in stacks.items():
            for logical_id, kind, statement in _statements(template):
                if kind != "trust" or "Service" not in statement.get("Principal", {}):
                    continue
                where = f"{env}/{stack}/{logical_id}"
                for service in _as_list(statement["Principal"]["Service"]):
                    if service in TRUST_WITHOUT_SOURCE:
                        continue
                    assert service in TRUST_SOURCE_ACCOUNT, f"{where}: decide source conditions for {service}"
                    condition = statement.get("Condition", {})
                    assert condition.get("StringEquals", {}).get("aws:SourceAccount") == account, where
                    if service in TRUST_SOURCE_ARN:
                        assert "aws:SourceArn" in condition.get("ArnLike", {}), where


@pytest.mark.parametrize("which", APPS)
def test_every_vpc_endpoint_has_a_policy_that_keeps_outside_credentials_out(
    which: str, request: pytest.FixtureRequest
) -> None:
    app = request.getfixturevalue(which)
    for env, stacks in app.templates.items():
        config = app.stages[env].config
        endpoints = [
            resource
            for resource in stacks["Foundation"]["Resources"].values()
            if resource["Type"] == "AWS::EC2::VPCEndpoint"
        ]
        for endpoint in endpoints:
            props = endpoint["Properties"]
            service = json.dumps(props["ServiceName"])
            assert "PolicyDocument" in props, f"{env}: {service} has no endpoint policy"
            if service.endswith('studio"') or service.endswith('notebook"'):
                continue  # browser sessions: no IAM principal to condition on (see network.py)
            for statement in props["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow"
                assert statement["Condition"]["StringEquals"]["aws:PrincipalAccount"] == config.account, service
            if props.get("VpcEndpointType") == "Gateway":
                buckets = {
                    r.split(":::")[1].split("/")[0]
                    for s in props["PolicyDocument"]["Statement"]
                    for r in _as_list(s["Resource"])
                }
                assert buckets == {
                    *(config.bucket_name(p) for p in ("data", "artifacts", "monitoring")),
                    f"prod-{config.region}-starport-layer-bucket",
                }


@pytest.mark.parametrize("which", APPS)
def test_no_role_uses_an_aws_managed_policy_and_every_function_logs_to_an_encrypted_expiring_group(
    which: str, request: pytest.FixtureRequest
) -> None:
    # CDK's provider roles and handlers are raw resources the rule packs never evaluate.
    app = request.getfixturevalue(which)
    for env, stacks in app.templates.items():
        for stack, template in stacks.items():
            resources = template["Resources"]
            for logical_id, resource in resources.items():
                props = resource.get("Properties", {})
                if resource["Type"] == "AWS::IAM::Role":
                    assert not props.get("ManagedPolicyArns"), f"{env}/{stack}/{logical_id}: AWS-managed policy"
                if resource["Type"] == "AWS::Lambda::Function":
                    group = props.get("LoggingConfig", {}).get("LogGroup")
                    assert isinstance(group, dict) and "Ref" in group, f"{env}/{stack}/{logical_id}: no own log group"
                    log_group = resources[group["Ref"]]["Properties"]
                    assert "KmsKeyId" in log_group and "RetentionInDays" in log_group, f"{env}/{stack}/{logical_id}"


def test_every_acknowledgment_is_a_finding_the_packs_still_report(single_account, multi_account) -> None:
    """Each acknowledged (path, finding) pair must be reported, and acknowledged, on that path in at least
    one environment of the shipped configurations: an acknowledgment whose rule no longer fires is stale.

    (Some fire in one configuration only, e.g. the Spark preprocess's job wildcard where
    spark_preprocessing is on, so the check is over both apps rather than per environment.)
    """
    reported_anywhere = set()
    for app in (single_account, multi_account):
        report = json.loads((app.outdir / "validation-report.json").read_text())
        reported = {
            (construct["constructPath"], violation["acknowledgedId"])
            for plugin in report["pluginReports"]
            for violation in plugin["suppressedViolations"]
            for construct in violation["violatingConstructs"]
        }
        for env, stage in app.stages.items():
            for index, path, finding in stage.acknowledgments_used:
                where = f"{env}/{ACKNOWLEDGMENTS[index].stack}/{path}"
                if (where, finding.format(**stage.placeholders)) in reported:
                    reported_anywhere.add((index, path, finding))
    # checkov's skips are checked by checkov itself: a skip of a check that passes is reported by it.
    declared = {(i, p, f) for i, ack in enumerate(ACKNOWLEDGMENTS) for p in ack.paths for f in ack.findings}
    stale = sorted(t for t in declared - reported_anywhere if not t[2].startswith(CHECKOV))
    assert not stale, f"acknowledged but reported on no path in any shipped configuration: {stale}"


@pytest.mark.parametrize("which", APPS)
def test_kms_grants_are_only_for_aws_resources(which: str, request: pytest.FixtureRequest) -> None:
    # The key policies keep CDK's account statement (kms:* for the account: IAM decides), so the
    # condition must be on every IAM statement that could create a grant.
    app = request.getfixturevalue(which)
    checked = 0
    for env, stacks in app.templates.items():
        for stack, template in stacks.items():
            for logical_id, kind, statement in _statements(template):
                resource_type = template["Resources"][logical_id]["Type"]
                # Endpoint policies are a ceiling, not a grant: IAM must still allow the call.
                ceilings = ("AWS::KMS::Key", "AWS::EC2::VPCEndpoint")
                if kind != "policy" or statement.get("Effect") != "Allow" or resource_type in ceilings:
                    continue
                actions = _as_list(statement["Action"])
                if any(fnmatchcase("kms:CreateGrant", action) for action in actions):
                    checked += 1
                    condition = statement.get("Condition", {})
                    assert condition.get("Bool", {}).get("kms:GrantIsForAWSResource") == "true", (
                        f"{env}/{stack}/{logical_id}: kms:CreateGrant without kms:GrantIsForAWSResource"
                    )
    assert checked  # the pipeline's job role creates grants for job volumes


@pytest.mark.parametrize("which", APPS)
def test_only_a_person_approves_what_the_pipeline_registers(which: str, request: pytest.FixtureRequest) -> None:
    app = request.getfixturevalue(which)
    for env, stage in app.stages.items():
        if stage.model_build is None:
            continue
        creates = [
            s
            for s in _policy_of(app, env, stage.model_build.execution.node.find_child("Policy"))
            if "sagemaker:CreateModelPackage" in _as_list(s["Action"])
        ]
        assert [s["Condition"] for s in creates] == [
            {"StringEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}}
        ], env
