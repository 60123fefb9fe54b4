"""Template assertions for the endpoint stack of each environment: what a deploy sets, and what it serves.

Shipped single-account configs: dev serverless (no capture, no monitoring), staging instance with
all-at-once blue/green, prod instance with 10 % canary; multi-account staging linear 25 % (fed by
dev's registry in another account) and prod canary on an imported VPC (fed by its own registry).
"""

from __future__ import annotations

import pytest

from stacks.config import ENDPOINT_VARIANT
from stacks.endpoint.hosting import MAX_UPDATE_SECONDS, PROVISIONING_SECONDS
from stacks.endpoint.package import PARAMETERS
from tests.infra.references import logical_id_of, referenced

INSTANCE_ENVS = ["staging", "prod"]


def _resources(app, env: str, type_: str) -> dict[str, dict]:
    return {k: v for k, v in app.templates[env]["Endpoint"]["Resources"].items() if v["Type"] == type_}


def _one(app, env: str, type_: str) -> tuple[str, dict]:
    (item,) = _resources(app, env, type_).items()
    return item


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_cdk_deploy_creates_the_stack_without_a_model_and_a_deploy_sets_it_by_parameters(single_account, env) -> None:
    template = single_account.templates[env]["Endpoint"]
    monitored = single_account.stages[env].config.monitoring is not None
    expected = set(PARAMETERS) if monitored else {"ModelPackageArn", "DeployId"}
    assert expected <= set(template["Parameters"])
    assert template["Parameters"]["ModelPackageArn"]["Default"] == ""
    assert template["Conditions"]["HasModel"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ModelPackageArn"}, ""]}]}
    served = ("AWS::SageMaker::Model", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Endpoint")
    for type_ in served:
        _, resource = _one(single_account, env, type_)
        assert resource["Condition"] == "HasModel", type_
    # Everything else exists from `cdk deploy` on: the roles a deploy needs, the alarms, the log group.
    unconditional = [r for r in template["Resources"].values() if "Condition" not in r]
    assert {r["Type"] for r in unconditional} >= {"AWS::IAM::Role", "AWS::CloudWatch::Alarm", "AWS::Logs::LogGroup"}
    assert all(o["Condition"] == "HasModel" for o in template["Outputs"].values() if "Export" not in o)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_deploy_names_its_model_and_config_anew_and_replaced_ones_are_kept(single_account, env) -> None:
    for type_, name in (
        ("AWS::SageMaker::Model", "ModelName"),
        ("AWS::SageMaker::EndpointConfig", "EndpointConfigName"),
    ):
        _, resource = _one(single_account, env, type_)
        assert resource["UpdateReplacePolicy"] == "Retain"  # the endpoint may still serve it after a rollback
        assert "DeletionPolicy" not in resource  # deleting the stack deletes it
        joined = resource["Properties"][name]["Fn::Join"]
        assert joined[0] == "-" and joined[1][0] == f"mlops-{env}"
        assert joined[1][2] == {"Ref": "DeployId"}
    _, model = _one(single_account, env, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"] == {"ModelPackageName": {"Ref": "ModelPackageArn"}}
    _, endpoint = _one(single_account, env, "AWS::SageMaker::Endpoint")
    # One name, one variant: updates are in place, guardrails and autoscaling keep working.
    assert endpoint["Properties"]["EndpointName"] == f"mlops-{env}-endpoint"
    _, config = _one(single_account, env, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["VariantName"] == ENDPOINT_VARIANT


@pytest.mark.parametrize("env", INSTANCE_ENVS)
def test_instance_endpoints_run_isolated_in_the_private_subnets_with_the_data_key(single_account, env) -> None:
    stage = single_account.stages[env]
    _, model = _one(single_account, env, "AWS::SageMaker::Model")
    props = model["Properties"]
    assert props["EnableNetworkIsolation"] is True
    (security_group,) = props["VpcConfig"]["SecurityGroupIds"]
    assert referenced(single_account, env, "Endpoint", security_group) == logical_id_of(stage.endpoint.security_group)
    private = {logical_id_of(s)[1] for s in stage.foundation.network.vpc.isolated_subnets}
    assert {referenced(single_account, env, "Endpoint", s)[1] for s in props["VpcConfig"]["Subnets"]} == private
    _, config = _one(single_account, env, "AWS::SageMaker::EndpointConfig")
    data_key = logical_id_of(stage.foundation.keys.data_key)
    assert referenced(single_account, env, "Endpoint", config["Properties"]["KmsKeyId"]) == data_key
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large"
    assert variant["InitialInstanceCount"] == stage.config.endpoint.autoscaling.min_instances


@pytest.mark.parametrize("env", INSTANCE_ENVS)
def test_data_capture_writes_requests_and_answers_to_the_monitoring_bucket_with_the_data_key(
    single_account, env
) -> None:
    stage = single_account.stages[env]
    _, config = _one(single_account, env, "AWS::SageMaker::EndpointConfig")
    capture = config["Properties"]["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 100
    assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input", "Output"]
    assert capture["CaptureContentTypeHeader"] == {
        "CsvContentTypes": ["text/csv"],
        "JsonContentTypes": ["application/json"],
    }
    data_key = logical_id_of(stage.foundation.keys.data_key)
    assert referenced(single_account, env, "Endpoint", capture["KmsKeyId"]) == data_key
    separator, (scheme, bucket, path) = capture["DestinationS3Uri"]["Fn::Join"]
    assert (separator, scheme, path) == ("", "s3://", "/capture")
    assert referenced(single_account, env, "Endpoint", bucket) == logical_id_of(stage.foundation.buckets.monitoring)


def test_staging_updates_all_at_once_and_prod_by_a_ten_percent_canary_both_rolled_back_by_their_alarms(
    single_account,
) -> None:
    expectations = {
        "staging": ({"Type": "ALL_AT_ONCE"}, 5 * 60),
        "prod": (
            {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 300},
            10 * 60,
        ),
    }
    for env, (routing, bake) in expectations.items():
        _, endpoint = _one(single_account, env, "AWS::SageMaker::Endpoint")
        props = endpoint["Properties"]
        policy = props["DeploymentConfig"]["BlueGreenUpdatePolicy"]
        assert policy["TrafficRoutingConfiguration"] == routing
        assert policy["TerminationWaitInSeconds"] == bake
        waits = routing.get("WaitIntervalInSeconds", 0)
        assert policy["MaximumExecutionTimeoutInSeconds"] == waits + bake + PROVISIONING_SECONDS
        alarms = props["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
        rollback = single_account.stages[env].endpoint.hosting.alarms.alarms
        assert [referenced(single_account, env, "Endpoint", a["AlarmName"]) for a in alarms] == [
            logical_id_of(alarm) for alarm in rollback
        ]
        assert props["RetainAllVariantProperties"] is True  # the autoscaled count survives an update


def test_a_linear_rollout_may_take_every_step_and_is_bounded_by_sagemakers_limit(multi_account) -> None:
    _, endpoint = _one(multi_account, "staging", "AWS::SageMaker::Endpoint")
    policy = endpoint["Properties"]["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        "WaitIntervalInSeconds": 120,
    }
    assert policy["MaximumExecutionTimeoutInSeconds"] == min(
        MAX_UPDATE_SECONDS, 4 * 120 + 5 * 60 + PROVISIONING_SECONDS
    )


@pytest.mark.parametrize("env", INSTANCE_ENVS)
def test_the_rollback_alarms_watch_5xx_latency_and_the_4xx_share_and_notify_their_topic(single_account, env) -> None:
    rollout = single_account.stages[env].config.endpoint.rollout
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in _resources(single_account, env, "AWS::CloudWatch::Alarm").values()
    }
    prefix = f"mlops-{env}-endpoint"
    errors = alarms[f"{prefix}-5xx"]
    assert (errors["MetricName"], errors["Statistic"], errors["Threshold"]) == ("Invocation5XXErrors", "Sum", 1)
    assert errors["Dimensions"] == [
        {"Name": "EndpointName", "Value": prefix},
        {"Name": "VariantName", "Value": ENDPOINT_VARIANT},
    ]
    latency = alarms[f"{prefix}-model-latency"]
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("ModelLatency", "p99")
    assert latency["Threshold"] == rollout.max_model_latency_ms * 1000  # microseconds
    rejections = alarms[f"{prefix}-4xx-rate"]
    assert rejections["Threshold"] == rollout.max_4xx_percent
    expression = [m for m in rejections["Metrics"] if "Expression" in m]
    assert expression[0]["Expression"] == "IF(invocations > 0, 100 * rejected / invocations, 0)"
    topic = logical_id_of(single_account.stages[env].endpoint.hosting.alarm_topic.topic)
    for alarm in alarms.values():
        assert alarm["TreatMissingData"] == "notBreaching"
        for actions in (alarm["AlarmActions"], alarm["OKActions"]):
            assert [referenced(single_account, env, "Endpoint", a) for a in actions] == [topic]


@pytest.mark.parametrize("env", INSTANCE_ENVS)
def test_autoscaling_tracks_invocations_per_instance_on_the_fixed_variant(single_account, env) -> None:
    scaling = single_account.stages[env].config.endpoint.autoscaling
    _, target = _one(single_account, env, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Condition"] == "HasModel"
    props = target["Properties"]
    assert (props["MinCapacity"], props["MaxCapacity"]) == (scaling.min_instances, scaling.max_instances)
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    separator, parts = props["ResourceId"]["Fn::Join"]
    assert separator == "/" and parts[0] == "endpoint" and parts[2:] == [f"variant/{ENDPOINT_VARIANT}"]
    _, policy = _one(single_account, env, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == scaling.invocations_per_instance


def test_autoscaling_off_removes_the_scalable_target_for_an_instance_type_change(tmp_path) -> None:
    # SageMaker refuses a new instance type on an autoscaled variant: the first of two deploys turns it off.
    import yaml

    from tests.conftest import ROOT, synthesize

    for name in ("dev", "staging", "prod"):
        data = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
        if name == "prod":
            data["endpoint"]["autoscaling"]["enabled"] = False
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    app = synthesize(tmp_path / "out", tmp_path, {"env": "prod"})
    assert not _resources(app, "prod", "AWS::ApplicationAutoScaling::ScalableTarget")
    assert not _resources(app, "prod", "AWS::ApplicationAutoScaling::ScalingPolicy")


def test_dev_is_serverless_without_capture_vpc_or_guardrails(single_account) -> None:
    _, config = _one(single_account, "dev", "AWS::SageMaker::EndpointConfig")
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MaxConcurrency": 5, "MemorySizeInMB": 2048}
    assert "InstanceType" not in variant
    assert "DataCaptureConfig" not in config["Properties"] and "KmsKeyId" not in config["Properties"]
    _, model = _one(single_account, "dev", "AWS::SageMaker::Model")
    assert "VpcConfig" not in model["Properties"] and "EnableNetworkIsolation" not in model["Properties"]
    _, endpoint = _one(single_account, "dev", "AWS::SageMaker::Endpoint")
    assert "DeploymentConfig" not in endpoint["Properties"]
    assert not _resources(single_account, "dev", "AWS::ApplicationAutoScaling::ScalableTarget")


def _policy(app, env: str, construct) -> list[dict]:
    stack, logical_id = logical_id_of(construct)
    return app.templates[env][stack]["Resources"][logical_id]["Properties"]["PolicyDocument"]["Statement"]


def _trust(app, env: str, role) -> list[dict]:
    stack, logical_id = logical_id_of(role)
    return app.templates[env][stack]["Resources"][logical_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]


@pytest.mark.parametrize(
    ("which", "env", "source_account"),
    [("single_account", "prod", "111111111111"), ("multi_account", "staging", "222222222222")],
)
def test_only_the_source_registrys_deploy_functions_may_act_as_the_deployer(
    which, env, source_account, request
) -> None:
    app = request.getfixturevalue(which)
    access = app.stages[env].endpoint.access
    (trust,) = _trust(app, env, access.deployer_role)
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{source_account}:root"}
    assert trust["Condition"] == {
        "ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{source_account}:role/mlops-dev-deploy-functions"}
    }
    statements = {s["Sid"]: s for s in _policy(app, env, access.node.find_child("DeployerPolicy"))}
    config = app.stages[env].config
    stack_arn = f"arn:aws:cloudformation:{config.region}:{config.account}:stack/mlops-{env}-endpoint/*"
    assert statements["UpdateThisStackOnly"]["Resource"] == stack_arn
    passed = statements["AsTheCloudFormationRole"]
    assert referenced(app, env, "Endpoint", passed["Resource"]) == logical_id_of(access.cloudformation_role)
    assert passed["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    # It creates nothing itself: only CloudFormation, as the CloudFormation role, does.
    actions = {
        a for s in statements.values() for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert not {a for a in actions if ":Create" in a or ":Update" in a} - {"cloudformation:UpdateStack"}


@pytest.mark.parametrize("env", INSTANCE_ENVS)
def test_cloudformation_may_create_models_only_isolated_in_this_environments_network(single_account, env) -> None:
    stage = single_account.stages[env]
    statements = {s["Sid"]: s for s in _policy(single_account, env, stage.endpoint.access.cloudformation_policy)}
    create = statements["CreateModelInThisVpc"]
    assert create["Action"] == "sagemaker:CreateModel"
    assert create["Resource"] == f"arn:aws:sagemaker:eu-west-1:111111111111:model/mlops-{env}-v*"
    assert create["Condition"]["Bool"] == {"sagemaker:NetworkIsolation": "true"}
    (security_group,) = create["Condition"]["ForAllValues:StringEquals"]["sagemaker:VpcSecurityGroupIds"]
    assert referenced(single_account, env, "Endpoint", security_group) == logical_id_of(stage.endpoint.security_group)
    pass_role = statements["PassTheModelRole"]
    assert referenced(single_account, env, "Endpoint", pass_role["Resource"]) == logical_id_of(
        stage.endpoint.access.model_role
    )


def test_a_stage_in_another_account_reads_its_registry_environments_versions(multi_account) -> None:
    access = multi_account.stages["staging"].endpoint.access
    statements = {s["Sid"]: s for s in _policy(multi_account, "staging", access.node.find_child("ModelPolicy"))}
    assert statements["ServedModelArtifacts"]["Resource"] == (
        "arn:aws:s3:::mlops-dev-artifacts-222222222222-eu-west-1/mlops-dev-model-build/*"
    )
    assert statements["ServedImages"]["Resource"] == "arn:aws:ecr:eu-west-1:222222222222:repository/mlops-dev/inference"
    assert statements["ServedDataKey"]["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/mlops-dev/data"}
    }
