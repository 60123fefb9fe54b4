"""Template assertions for the Studio stack: network isolation, encryption, personas, idle shutdown, teardown."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from tests.infra.references import logical_id_of, referenced

ENVS = ("dev", "staging", "prod")


def _resources(app, env: str, type_: str) -> dict[str, dict]:
    return {k: v for k, v in app.templates[env]["Studio"]["Resources"].items() if v["Type"] == type_}


def _domain(app, env: str) -> dict:
    (domain,) = _resources(app, env, "AWS::SageMaker::Domain").values()
    return domain["Properties"]


@pytest.mark.parametrize("env", ENVS)
def test_domain_is_vpc_only_with_iam_auth_in_the_private_subnets(single_account, env: str) -> None:
    props = _domain(single_account, env)
    assert props["AppNetworkAccessType"] == "VpcOnly"
    assert props["AuthMode"] == "IAM"
    assert props["DomainName"] == f"mlops-{env}"
    network = single_account.stages[env].foundation.network
    # The foundation's VPC and its private subnets, through their exports.
    assert referenced(single_account, env, "Studio", props["VpcId"]) == logical_id_of(network.vpc)
    assert sorted(referenced(single_account, env, "Studio", s) for s in props["SubnetIds"]) == sorted(
        logical_id_of(s) for s in network.vpc.isolated_subnets
    )
    assert props["DomainSettings"]["DockerSettings"] == {"EnableDockerAccess": "DISABLED"}


@pytest.mark.parametrize("env", ENVS)
def test_domain_storage_and_sharing_use_the_environments_key_and_bucket(single_account, env: str) -> None:
    props = _domain(single_account, env)
    data_key = single_account.stages[env].foundation.keys.data_key
    assert referenced(single_account, env, "Studio", props["KmsKeyId"]) == logical_id_of(data_key)
    sharing = props["DefaultUserSettings"]["SharingSettings"]
    assert sharing["S3OutputPath"] == f"s3://mlops-{env}-artifacts-111111111111-eu-west-1/studio-sharing"
    assert sharing["S3KmsKeyId"] == props["KmsKeyId"]


@pytest.mark.parametrize("env", ENVS)
def test_security_group_admits_only_itself(single_account, env: str) -> None:
    ((group_id, group),) = [
        (k, v)
        for k, v in _resources(single_account, env, "AWS::EC2::SecurityGroup").items()
        if "Studio apps" in v["Properties"]["GroupDescription"]
    ]
    assert "SecurityGroupIngress" not in group["Properties"]  # no inline rule from any CIDR
    ingress = [
        v["Properties"]
        for v in _resources(single_account, env, "AWS::EC2::SecurityGroupIngress").values()
        if v["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    assert {(r["FromPort"], r["ToPort"]) for r in ingress} == {(2049, 2049), (8192, 65535)}
    assert all(r["SourceSecurityGroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]} for r in ingress)
    for resource in single_account.templates[env]["Studio"]["Resources"].values():
        assert (
            resource["Properties"].get("CidrIp") != "0.0.0.0/0" or resource["Type"] != "AWS::EC2::SecurityGroupIngress"
        )
    props = _domain(single_account, env)
    assert props["DefaultUserSettings"]["SecurityGroups"] == [{"Fn::GetAtt": [group_id, "GroupId"]}]


@pytest.mark.parametrize(("env", "minutes"), [("dev", 60), ("staging", 120), ("prod", 120)])
def test_idle_jupyterlab_and_code_editor_apps_shut_down(single_account, env: str, minutes: int) -> None:
    settings = _domain(single_account, env)["DefaultUserSettings"]
    for app in ("JupyterLabAppSettings", "CodeEditorAppSettings"):
        idle = settings[app]["AppLifecycleManagement"]["IdleSettings"]
        assert idle == {
            "LifecycleManagement": "ENABLED",
            "IdleTimeoutInMinutes": minutes,
            "MinIdleTimeoutInMinutes": 60,
            "MaxIdleTimeoutInMinutes": minutes,
        }
    space = _domain(single_account, env)["DefaultSpaceSettings"]["JupyterLabAppSettings"]
    assert space["AppLifecycleManagement"]["IdleSettings"]["IdleTimeoutInMinutes"] == minutes


def _roles_by_persona(app, env: str) -> dict[str, str]:
    roles = _resources(app, env, "AWS::IAM::Role")
    return {
        persona: next(k for k, v in roles.items() if v["Properties"].get("Description", "").endswith(persona))
        for persona in ("data_scientist", "ml_engineer")
    }


def test_user_profiles_come_from_config_with_their_personas_role(single_account) -> None:
    roles = _roles_by_persona(single_account, "staging")
    profiles = {
        p["Properties"]["UserProfileName"]: p["Properties"]
        for p in _resources(single_account, "staging", "AWS::SageMaker::UserProfile").values()
    }
    assert set(profiles) == {"alice", "bob"}
    assert profiles["alice"]["UserSettings"]["ExecutionRole"] == {"Fn::GetAtt": [roles["data_scientist"], "Arn"]}
    assert profiles["bob"]["UserSettings"]["ExecutionRole"] == {"Fn::GetAtt": [roles["ml_engineer"], "Arn"]}
    assert {"Key": "persona", "Value": "ml_engineer"} in profiles["bob"]["Tags"]
    prod = {
        p["Properties"]["UserProfileName"]
        for p in _resources(single_account, "prod", "AWS::SageMaker::UserProfile").values()
    }
    assert prod == {"bob"}


def _persona_actions(app, env: str) -> dict[str, dict[str, list]]:
    """persona -> action -> resources granted (from its managed policy)."""
    roles = _roles_by_persona(app, env)
    out: dict[str, dict[str, list]] = {}
    for persona, role in roles.items():
        (policy,) = [
            p
            for p in _resources(app, env, "AWS::IAM::ManagedPolicy").values()
            if {"Ref": role} in p["Properties"]["Roles"]
        ]
        grants: dict[str, list] = {}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                grants.setdefault(action, []).extend(resources)
        out[persona] = grants
    return out


@pytest.mark.parametrize("env", ENVS)
def test_only_ml_engineers_approve_models_and_run_pipelines_and_nobody_pushes_images(single_account, env: str) -> None:
    grants = _persona_actions(single_account, env)
    engineer_only = {"sagemaker:UpdateModelPackage", "sagemaker:StartPipelineExecution"}
    assert engineer_only <= set(grants["ml_engineer"])
    assert not engineer_only & set(grants["data_scientist"])
    # Images are CI's: whoever approves cannot also choose what an image tag holds.
    assert not {"ecr:PutImage", "ecr:CompleteLayerUpload"} & {*grants["ml_engineer"], *grants["data_scientist"]}
    assert grants["ml_engineer"]["sagemaker:UpdateModelPackage"] == [
        f"arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-{env}-models/*"
    ]
    assert grants["ml_engineer"]["sagemaker:StartPipelineExecution"] == [
        f"arn:aws:sagemaker:eu-west-1:111111111111:pipeline/mlops-{env}-*"
    ]


@pytest.mark.parametrize("env", ENVS)
def test_both_personas_read_data_and_experiment_but_only_in_this_environment(single_account, env: str) -> None:
    grants = _persona_actions(single_account, env)
    for persona in ("data_scientist", "ml_engineer"):
        g = grants[persona]
        assert f"arn:aws:s3:::mlops-{env}-data-111111111111-eu-west-1/*" in g["s3:GetObject"]
        assert "s3:PutObject" in g
        assert all("-artifacts-" in r for r in g["s3:PutObject"])  # never writes the data bucket
        assert "sagemaker:CreateTrainingJob" in g
        text = json.dumps(g)
        for other in {"dev", "staging", "prod"} - {env}:
            assert f"mlops-{other}-" not in text
        assert "iam:PassRole" in g and len(g["iam:PassRole"]) == 1  # only its own role


def test_experiment_jobs_must_run_in_this_environments_vpc_isolated_with_the_data_key(single_account) -> None:
    stage = single_account.stages["dev"]

    def target(value: object) -> tuple[str, str]:
        return referenced(single_account, "dev", "Studio", value)

    subnets = {logical_id_of(subnet) for subnet in stage.foundation.network.vpc.isolated_subnets}
    checked = 0
    for policy in _resources(single_account, "dev", "AWS::IAM::ManagedPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "sagemaker:CreateTrainingJob" in statement["Action"]:
                checked += 1
                condition = statement["Condition"]
                assert condition["Null"] == {"sagemaker:VpcSubnets": "false", "sagemaker:VpcSecurityGroupIds": "false"}
                within = condition["ForAllValues:StringEquals"]
                assert {target(s) for s in within["sagemaker:VpcSubnets"]} == subnets  # dev's own, by id
                (group,) = within["sagemaker:VpcSecurityGroupIds"]
                assert target(group) == logical_id_of(stage.studio.studio.security_group)
                keys = condition["StringEquals"]
                assert keys["sagemaker:VolumeKmsKey"] == keys["sagemaker:OutputKmsKey"]
                assert target(keys["sagemaker:VolumeKmsKey"]) == logical_id_of(stage.foundation.keys.data_key)
                assert condition["Bool"] == {
                    "sagemaker:NetworkIsolation": "true",
                    "sagemaker:InterContainerTrafficEncryption": "true",
                }
                assert all("/mlops-dev-" in json.dumps(r) for r in statement["Resource"])
    assert checked == 2  # one per persona


@pytest.mark.parametrize(
    ("env", "teardown", "efs"), [("dev", "true", "Delete"), ("staging", "false", "Retain"), ("prod", "false", "Retain")]
)
def test_teardown_runs_before_the_domain_and_profiles_are_deleted(single_account, env, teardown, efs) -> None:
    resources = single_account.templates[env]["Studio"]["Resources"]
    ((_name, custom),) = [(k, v) for k, v in resources.items() if v["Type"] == "Custom::StudioTeardown"]
    assert custom["Properties"]["TeardownOnDelete"] == teardown
    assert custom["Properties"]["HomeEfsRetention"] == efs
    domain = next(k for k, v in resources.items() if v["Type"] == "AWS::SageMaker::Domain")
    profiles = {k for k, v in resources.items() if v["Type"] == "AWS::SageMaker::UserProfile"}
    assert {domain, *profiles} <= set(custom["DependsOn"])


def test_teardown_function_is_hardened(single_account) -> None:
    template = single_account.template("dev", "Studio")
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "studio_teardown.handler.lambda_handler",
            "Runtime": "python3.14",
            "Timeout": 900,
            "ReservedConcurrentExecutions": 2,
            "DeadLetterConfig": {"TargetArn": Match.any_value()},
            "KmsKeyArn": Match.any_value(),
            "VpcConfig": {"SubnetIds": Match.any_value(), "SecurityGroupIds": Match.any_value()},
            "LoggingConfig": {"LogGroup": Match.any_value()},
        },
    )
    template.has_resource_properties("AWS::SQS::Queue", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::Logs::LogGroup", {"KmsKeyId": Match.any_value(), "RetentionInDays": 30})
    params = single_account.templates["dev"]["Studio"]["Parameters"]
    assert {
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": "/aws/service/powertools/python/x86_64/python3.14/3.37.0",
    } in params.values()


def test_teardown_may_delete_only_inside_its_domain(single_account) -> None:
    policies = _resources(single_account, "dev", "AWS::IAM::ManagedPolicy")
    (policy,) = [p for p in policies.values() if "Studio teardown" in p["Properties"]["Description"]]
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        if "sagemaker:DeleteApp" in statement["Action"]:
            text = json.dumps(statement["Resource"])
            assert text.count("StudioDomain") == 4  # domain, app/, space/, user-profile/ of this domain only


def test_studio_can_be_disabled(tmp_path) -> None:
    import shutil

    from tests.conftest import ROOT, synthesize

    for name in ("dev", "staging", "prod"):
        shutil.copy(ROOT / "config" / f"{name}.yaml", tmp_path / f"{name}.yaml")
    (tmp_path / "prod.yaml").write_text(
        (tmp_path / "prod.yaml").read_text().replace("studio:\n", "studio:\n  enabled: false\n")
    )
    app = synthesize(tmp_path / "out", tmp_path, {"env": "prod"})
    assert "Studio" not in app.templates["prod"]
    assert set(app.templates["prod"]) == {"Foundation", "ModelBuild", "Endpoint"}
