"""Template assertions for an endpoint's monitoring (both engines) and the retrain stack, in every shipped
environment, single- and multi-account.

Shipped: single-account staging and prod use the platform engine (prod checks model quality), and
dev's registry feeds both, so dev holds the retrain stack. In the multi-account example staging uses
Model Monitor (with model quality) and is fed by dev in another account (events forwarded); prod
(daily, model quality) is fed by its own registry.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match
from moto.events.models import EventPattern

from stacks.config import EnvironmentConfig, MonitoringEngine
from stacks.monitoring.events import alarm_pattern, failed_build_pattern, failed_run_pattern
from tests.infra.references import logical_id_of, referenced

APPS = ["single_account", "multi_account"]


def _monitored(app: Any) -> list[str]:
    return [env for env, stage in app.stages.items() if stage.config.monitoring is not None]


def _resources(app: Any, env: str, stack: str, type_: str) -> dict[str, dict]:
    return {k: v for k, v in app.templates[env][stack]["Resources"].items() if v["Type"] == type_}


def _by_engine(app: Any, engine: MonitoringEngine) -> list[str]:
    return [env for env in _monitored(app) if app.stages[env].config.monitoring.engine is engine]


def _function(app: Any, env: str, stack: str, name: str) -> dict:
    (function,) = [
        f["Properties"]
        for f in _resources(app, env, stack, "AWS::Lambda::Function").values()
        if f["Properties"].get("FunctionName") == name
    ]
    return function


def test_the_shipped_configs_exercise_both_engines_hourly_and_daily() -> None:
    # What the other tests rely on: each engine, each schedule and model quality appear somewhere.
    from pathlib import Path

    from stacks.config import load_environments

    root = Path(__file__).resolve().parents[2] / "config"
    configs = [*load_environments(root), *load_environments(root / "examples" / "multi-account")]
    monitored = [c.monitoring for c in configs if c.monitoring is not None]
    assert {m.engine for m in monitored} == set(MonitoringEngine)
    assert {m.schedule for m in monitored} == {"hourly", "daily"}
    assert {m.model_quality for m in monitored} == {True, False}
    assert {m.drift_threshold is None for m in monitored} == {True, False}


@pytest.mark.parametrize("which", APPS)
def test_only_what_needs_a_served_version_waits_for_one(which: str, request: pytest.FixtureRequest) -> None:
    # The deploy's CloudFormation role may do little: cdk deploy creates the rest, before any model.
    app = request.getfixturevalue(which)
    for env in _monitored(app):
        resources = app.templates[env]["Endpoint"]["Resources"]
        conditional = {lid for lid, r in resources.items() if r.get("Condition") == "HasModel"}
        monitoring = app.stages[env].endpoint.monitoring
        ours = {logical_id_of(c)[1] for c in monitoring.node.find_all() if hasattr(c, "cfn_options")}
        waiting = {resources[lid]["Type"] for lid in ours & conditional}
        expected = {"Custom::MonitoringBaseline"}
        if app.stages[env].config.monitoring.engine is MonitoringEngine.MODEL_MONITOR:
            expected |= {"AWS::SageMaker::MonitoringSchedule", "AWS::SageMaker::DataQualityJobDefinition"}
            expected |= {"AWS::SageMaker::ModelQualityJobDefinition"}
        assert waiting == expected, env
        assert len(ours - conditional) > 20  # the functions, roles, queues, schedules, rules, alarms, dashboard


@pytest.mark.parametrize("which", APPS)
def test_the_baseline_carries_the_drift_threshold_only_where_config_sets_it_and_names_its_constraints(
    which: str, request
) -> None:
    app = request.getfixturevalue(which)
    for env in _monitored(app):
        ((logical_id, baseline),) = _resources(app, env, "Endpoint", "Custom::MonitoringBaseline").items()
        threshold = app.stages[env].config.monitoring.drift_threshold
        given = {k: float(v) for k, v in baseline["Properties"].items() if k == "DriftThreshold"}
        assert given == ({} if threshold is None else {"DriftThreshold": threshold}), env  # exactly, not rounded
        # The constraints in use (with the threshold) are named by an output, once a version is served.
        output = app.templates[env]["Endpoint"]["Outputs"]["MonitoringConstraintsUri"]
        assert output == {"Value": {"Fn::GetAtt": [logical_id, "ConstraintsUri"]}, "Condition": "HasModel"}, env


@pytest.mark.parametrize("which", APPS)
def test_a_deploy_may_apply_its_parameters_to_monitoring_and_nothing_more(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env in _monitored(app):
        stage = app.stages[env]
        config, monitoring = stage.config, stage.endpoint.monitoring
        policy = app.templates[env]["Endpoint"]["Resources"][
            logical_id_of(stage.endpoint.access.cloudformation_policy)[1]
        ]
        statements = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
        invoke = statements["MonitoringBaselineOfTheVersion"]
        assert invoke["Action"] == "lambda:InvokeFunction"
        assert invoke["Resource"] == {"Fn::GetAtt": [logical_id_of(monitoring.baseline.function.function)[1], "Arn"]}
        alarms = statements["MonitoringAlarmsNameTheVersion"]
        assert sorted(alarms["Resource"]) == sorted(
            f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:{config.monitoring_alarm_name(kind)}"
            for kind in monitoring.alarms.alarms
        )
        model_monitor = config.monitoring.engine is MonitoringEngine.MODEL_MONITOR
        assert ("ModelMonitorOnceServed" in statements) is model_monitor
        if model_monitor:
            arns = statements["ModelMonitorOnceServed"]["Resource"]
            assert all(f":{config.account}:" in a and f"/{config.name_prefix}-" in a for a in arns), arns
            passed = statements["ModelMonitorJobsRunAsTheMonitoringRole"]
            assert passed["Resource"] == {"Fn::GetAtt": [logical_id_of(monitoring.job_role.role)[1], "Arn"]}


# --- the platform engine ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", APPS)
def test_platform_schedules_invoke_the_launcher_with_schedulers_context(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env in _by_engine(app, MonitoringEngine.PLATFORM):
        config = app.stages[env].config
        schedules = _resources(app, env, "Endpoint", "AWS::Scheduler::Schedule")
        assert sorted(s["Properties"]["Name"] for s in schedules.values()) == sorted(
            config.monitoring_schedule_name(c) for c in config.monitoring.checks
        )
        launcher = logical_id_of(app.stages[env].endpoint.monitoring.engine.launcher.function)[1]
        data_key = logical_id_of(app.stages[env].foundation.keys.data_key)
        expression = "cron(10 * * * ? *)" if config.monitoring.schedule == "hourly" else "cron(10 0 * * ? *)"
        for schedule in schedules.values():
            props = schedule["Properties"]
            assert props["ScheduleExpression"] == expression and props["ScheduleExpressionTimezone"] == "UTC"
            assert referenced(app, env, "Endpoint", props["KmsKeyArn"]) == data_key
            target = props["Target"]
            assert target["Arn"] == {"Fn::GetAtt": [launcher, "Arn"]}
            payload = json.loads(target["Input"])
            assert payload["scheduled_time"] == "<aws.scheduler.scheduled-time>"
            assert payload["check"] in config.monitoring.checks
            assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0 and "DeadLetterConfig" in target


@pytest.mark.parametrize("which", APPS)
def test_the_launcher_runs_isolated_encrypted_jobs_of_the_sources_image_in_the_private_subnets(
    which: str, request
) -> None:
    app = request.getfixturevalue(which)
    for env in _by_engine(app, MonitoringEngine.PLATFORM):
        stage = app.stages[env]
        config, source = stage.config, stage.promotion.source
        variables = _function(app, env, "Endpoint", f"{config.name_prefix}-monitoring-launcher")["Environment"][
            "Variables"
        ]
        # Fixed: each run reads the served version (image tag, baseline folder) from the current folder.
        assert variables["CURRENT_BASELINE_URI"] == (
            f"s3://{config.bucket_name('monitoring')}/baselines/{config.endpoint_name}/current/"
        )
        assert variables["IMAGE_REPOSITORY"] == (
            f"{source.account}.dkr.ecr.{source.region}.amazonaws.com/{source.name_prefix}/training"
        )
        assert referenced(app, env, "Endpoint", variables["SECURITY_GROUP_IDS"]) == logical_id_of(
            stage.endpoint.security_group
        )
        assert variables["JOB_NAME_PREFIX"] == f"{config.name_prefix}-monitor-"
        assert variables["PERIOD_HOURS"] == str(config.monitoring.period_hours)
        (create,) = [
            s
            for p in _resources(app, env, "Endpoint", "AWS::IAM::ManagedPolicy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if "sagemaker:CreateProcessingJob" in json.dumps(s.get("Action"))
        ]
        assert create["Condition"]["Bool"] == {
            "sagemaker:NetworkIsolation": "true",
            "sagemaker:InterContainerTrafficEncryption": "true",
        }
        assert set(create["Condition"]["StringEquals"]) == {"sagemaker:VolumeKmsKey", "sagemaker:OutputKmsKey"}
        assert create["Resource"] == (
            f"arn:aws:sagemaker:{config.region}:{config.account}:processing-job/{config.name_prefix}-monitor-*"
        )
        assert not _resources(app, env, "Endpoint", "AWS::SageMaker::MonitoringSchedule")


# --- the model_monitor engine -------------------------------------------------------------------------


def _model_monitor_envs(app: Any) -> list[str]:
    return _by_engine(app, MonitoringEngine.MODEL_MONITOR)


def test_the_multi_account_staging_runs_model_monitor(multi_account) -> None:
    assert _model_monitor_envs(multi_account) == ["staging"]


@pytest.mark.parametrize("kind", ["DataQuality", "ModelQuality"])
def test_model_monitor_jobs_are_isolated_encrypted_and_read_the_deployed_baseline(multi_account, kind: str) -> None:
    app, env = multi_account, "staging"
    stage = app.stages[env]
    config = stage.config
    template = app.template(env, "Endpoint")
    data_key = logical_id_of(stage.foundation.keys.data_key)
    baseline = logical_id_of(stage.endpoint.monitoring.baseline.node.find_child("Resource"))[1]
    (definition,) = _resources(app, env, "Endpoint", f"AWS::SageMaker::{kind}JobDefinition").values()
    props = definition["Properties"]
    network = props["NetworkConfig"]
    assert network["EnableNetworkIsolation"] is True and network["EnableInterContainerTrafficEncryption"] is True
    assert referenced(app, env, "Endpoint", network["VpcConfig"]["SecurityGroupIds"][0]) == logical_id_of(
        stage.endpoint.security_group
    )
    assert len(network["VpcConfig"]["Subnets"]) == len(config.networking.availability_zones)
    cluster = props["JobResources"]["ClusterConfig"]
    assert referenced(app, env, "Endpoint", cluster["VolumeKmsKeyId"]) == data_key
    output = props[f"{kind}JobOutputConfig"]
    assert referenced(app, env, "Endpoint", output["KmsKeyId"]) == data_key
    # Model Monitor appends <endpoint>/<schedule>/yyyy/mm/dd/hh: its reports land beside the platform's.
    assert output["MonitoringOutputs"][0]["S3Output"]["S3Uri"] == f"s3://{config.bucket_name('monitoring')}/reports"
    assert props["RoleArn"] == {"Fn::GetAtt": [logical_id_of(stage.endpoint.monitoring.job_role.role)[1], "Arn"]}
    assert "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer" in json.dumps(props)
    assert props["JobDefinitionName"].startswith(f"{config.name_prefix}-{kind[0].lower()}q-")
    # The current baseline, which each deploy's custom resource (which these wait for) replaces.
    current = f"s3://{config.bucket_name('monitoring')}/baselines/{config.endpoint_name}/current/"
    if kind == "DataQuality":
        assert props["DataQualityBaselineConfig"]["ConstraintsResource"]["S3Uri"] == f"{current}constraints.json"
        assert props["DataQualityBaselineConfig"]["StatisticsResource"]["S3Uri"] == f"{current}statistics.json"
    else:
        delay, period = config.monitoring.ground_truth_delay_hours, config.monitoring.period_hours
        endpoint_input = props["ModelQualityJobInput"]["EndpointInput"]
        assert (endpoint_input["StartTimeOffset"], endpoint_input["EndTimeOffset"]) == (
            f"-PT{delay + period}H",
            f"-PT{delay}H",
        )
        assert props["ModelQualityJobInput"]["GroundTruthS3Input"]["S3Uri"] == (
            f"s3://{config.bucket_name('monitoring')}/{config.ground_truth_prefix}"
        )
        assert props["ModelQualityAppSpecification"]["ProblemType"] == "Regression"
        assert props["ModelQualityBaselineConfig"]["ConstraintsResource"]["S3Uri"] == (
            f"{current}model_quality_constraints.json"
        )
    template.has_resource_properties(
        "AWS::SageMaker::MonitoringSchedule",
        {
            "MonitoringScheduleName": config.monitoring_schedule_name(
                "data-quality" if kind == "DataQuality" else "model-quality"
            ),
            "EndpointName": config.endpoint_name,
            "MonitoringScheduleConfig": {
                "MonitoringType": kind,
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinitionName": Match.any_value(),
            },
        },
    )
    (schedule,) = [
        r
        for r in _resources(app, env, "Endpoint", "AWS::SageMaker::MonitoringSchedule").values()
        if r["Properties"]["MonitoringScheduleConfig"]["MonitoringType"] == kind
    ]
    # After the endpoint it watches, its job definition, and the baseline the deploy made current.
    endpoint = logical_id_of(stage.endpoint.hosting.endpoint)[1]
    definition_id = next(
        lid for lid, r in _resources(app, env, "Endpoint", f"AWS::SageMaker::{kind}JobDefinition").items()
    )
    assert {endpoint, definition_id, baseline} <= set(schedule["DependsOn"])
    assert (
        schedule["Properties"]["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"] == props["JobDefinitionName"]
    )
    assert not _resources(app, env, "Endpoint", "AWS::Scheduler::Schedule")


def test_model_monitor_jobs_may_publish_only_into_model_monitors_namespaces(multi_account) -> None:
    role = multi_account.stages["staging"].endpoint.monitoring.job_role
    policy = multi_account.templates["staging"]["Endpoint"]["Resources"][logical_id_of(role.policy)[1]]
    (metrics,) = [
        s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "cloudwatch:PutMetricData"
    ]
    assert metrics["Condition"] == {
        "StringEquals": {
            "cloudwatch:namespace": [
                "aws/sagemaker/Endpoints/data-metrics",
                "/aws/sagemaker/Endpoints/data-metrics",
                "aws/sagemaker/Endpoints/model-metrics",
                "/aws/sagemaker/Endpoints/model-metrics",
            ]
        }
    }


# --- results, alarms, dashboard ---------------------------------------------------------------------


@pytest.mark.parametrize("which", APPS)
def test_each_run_that_ends_goes_to_the_results_function(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env in _monitored(app):
        config = app.stages[env].config
        function = logical_id_of(app.stages[env].endpoint.monitoring.results.function.function)[1]
        rules = [
            r["Properties"]
            for r in _resources(app, env, "Endpoint", "AWS::Events::Rule").values()
            if r["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
        ]
        (rule,) = rules
        detail = rule["EventPattern"]["detail"]
        assert detail["ProcessingJobStatus"] == ["Completed", "Failed", "Stopped"]
        if config.monitoring.engine is MonitoringEngine.PLATFORM:
            assert detail["ProcessingJobName"] == [{"prefix": f"{config.name_prefix}-monitor-"}]
        else:
            assert detail["MonitoringScheduleArn"] == [
                f"arn:aws:sagemaker:{config.region}:{config.account}:monitoring-schedule/{config.name_prefix}-{c}"
                for c in sorted(config.monitoring.checks)
            ]
        assert "DeadLetterConfig" in rule["Targets"][0]


@pytest.mark.parametrize("which", APPS)
def test_alarms_watch_the_violation_counts_with_the_monitoring_context(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env in _monitored(app):
        config = app.stages[env].config
        alarms = {
            a["Properties"]["AlarmName"]: a["Properties"]
            for a in _resources(app, env, "Endpoint", "AWS::CloudWatch::Alarm").values()
            if a["Properties"]["AlarmName"].startswith(f"{config.name_prefix}-monitoring-")  # not the rollback alarms
        }
        expected = {"drift", "data-quality"} | ({"model-quality"} if config.monitoring.model_quality else set())
        assert set(alarms) == {config.monitoring_alarm_name(kind) for kind in expected}
        for kind in expected:
            props = alarms[config.monitoring_alarm_name(kind)]
            assert props["Threshold"] == 1 and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert props["TreatMissingData"] == "notBreaching"
            topic = logical_id_of(app.stages[env].endpoint.hosting.alarm_topic.topic)
            for action in (*props["AlarmActions"], *props["OKActions"]):
                assert referenced(app, env, "Endpoint", action) == topic
            stats = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
            for stat in stats:
                assert stat["Period"] == config.monitoring.period_hours * 3600 and stat["Stat"] == "Maximum"
                assert stat["Metric"]["Namespace"] == "AWS-MLOps/Monitoring"
                assert {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}["Endpoint"] == config.endpoint_name
            description = props["AlarmDescription"]["Fn::Join"][1]
            assert {"Ref": "ModelPackageArn"} in description
            text = "".join(part if isinstance(part, str) else "ARN" for part in description)
            context = json.loads(text)
            assert context["action"] == ("notify" if kind == "data-quality" else "retrain")
            assert context["reports"].startswith(f"s3://{config.bucket_name('monitoring')}/reports/")
        names = {
            s["Metric"]["MetricName"]
            for s in (
                m["MetricStat"] for m in alarms[config.monitoring_alarm_name("drift")]["Metrics"] if "MetricStat" in m
            )
        }
        assert names == {"baseline_drift_violations"}


@pytest.mark.parametrize("which", APPS)
def test_each_monitored_endpoint_has_a_dashboard(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env in _monitored(app):
        stage = app.stages[env]
        config, source = stage.config, stage.promotion.source
        (dashboard,) = _resources(app, env, "Endpoint", "AWS::CloudWatch::Dashboard").values()
        assert dashboard["Properties"]["DashboardName"] == f"{config.name_prefix}-monitoring"
        body = json.dumps(dashboard["Properties"]["DashboardBody"])
        for needle in ("Invocations", "Invocation5XXErrors", "ModelLatency", "SEARCH(", "feature_baseline_drift"):
            assert needle in body, (env, needle)
        assert source.build_pipeline_name in body and "Retrain_started" in body
        if source.account != config.account:
            assert f'\\"accountId\\":\\"{source.account}\\"' in body


# --- the retrain stack and the path of the events ----------------------------------------------------


def _retrain_envs(app: Any) -> list[str]:
    return [env for env, stage in app.stages.items() if stage.retrain is not None]


def test_the_retrain_function_lives_where_the_build_it_restarts_lives(single_account, multi_account) -> None:
    assert _retrain_envs(single_account) == ["dev"]
    assert _retrain_envs(multi_account) == ["dev", "prod"]


@pytest.mark.parametrize("which", APPS)
def test_the_retrain_table_topic_and_function(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env in _retrain_envs(app):
        stage, config = app.stages[env], app.stages[env].config
        data_key = logical_id_of(stage.foundation.keys.data_key)
        (table,) = _resources(app, env, "Retrain", "AWS::DynamoDB::Table").values()
        props = table["Properties"]
        assert props["TableName"] == f"{config.name_prefix}-model-retrain"
        assert props["SSESpecification"]["SSEEnabled"] is True and props["SSESpecification"]["SSEType"] == "KMS"
        assert referenced(app, env, "Retrain", props["SSESpecification"]["KMSMasterKeyId"]) == data_key
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
        (topic,) = _resources(app, env, "Retrain", "AWS::SNS::Topic").values()
        assert referenced(app, env, "Retrain", topic["Properties"]["KmsMasterKeyId"]) == data_key
        emails = sorted(
            s["Properties"]["Endpoint"] for s in _resources(app, env, "Retrain", "AWS::SNS::Subscription").values()
        )
        assert emails == sorted(config.deploy.notify_emails)
        function = _function(app, env, "Retrain", f"{config.name_prefix}-model-retrain")
        variables = function["Environment"]["Variables"]
        assert variables["PIPELINE_NAME"] == config.build_pipeline_name
        assert variables["COOLDOWN_HOURS"] == f"{config.deploy.retrain_cooldown_hours:g}"
        assert {"TOPIC_ARN", "TABLE_NAME"} <= set(variables)
        assert function["ReservedConcurrentExecutions"] >= 1 and "DeadLetterConfig" in function
        assert referenced(app, env, "Retrain", function["KmsKeyArn"]) == data_key
        (start,) = [
            s
            for p in _resources(app, env, "Retrain", "AWS::IAM::ManagedPolicy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Action"] == "sagemaker:StartPipelineExecution"
        ]
        assert (
            start["Resource"]
            == f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{config.build_pipeline_name}"
        )


@pytest.mark.parametrize("which", APPS)
def test_the_retrain_rules_match_the_alarms_and_failed_runs_of_the_endpoints_its_registry_feeds(which, request) -> None:
    app = request.getfixturevalue(which)
    for env in _retrain_envs(app):
        stages = [s for s in app.stages[env].promotion.stages if s.monitoring is not None]
        patterns = [
            r["Properties"]["EventPattern"] for r in _resources(app, env, "Retrain", "AWS::Events::Rule").values()
        ]
        expected = [alarm_pattern(s) for s in stages] + [failed_run_pattern(s) for s in stages]
        expected.append(failed_build_pattern(app.stages[env].config))
        assert sorted(map(json.dumps, patterns)) == sorted(json.dumps(p, sort_keys=True) for p in expected)


def _build_status(config: EnvironmentConfig, status: str, pipeline: str = "") -> dict:
    arn = f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{pipeline or config.build_pipeline_name}"
    return {
        "version": "0",
        "id": "5c3d",
        "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
        "source": "aws.sagemaker",
        "account": config.account,
        "time": "2026-11-23T11:40:00Z",
        "region": config.region,
        "resources": [arn, f"{arn}/execution/k2x9"],
        "detail": {
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": "Executing",
            "pipelineArn": arn,
            "pipelineExecutionArn": f"{arn}/execution/k2x9",
        },
    }


@pytest.mark.parametrize("which", APPS)
def test_the_builds_failed_or_stopped_executions_reach_the_retrain_function_and_its_reason_is_readable(
    which, request
) -> None:
    app = request.getfixturevalue(which)
    for env in _retrain_envs(app):
        config = app.stages[env].config
        for status, matched in (("Failed", True), ("Stopped", True), ("Succeeded", False), ("Executing", False)):
            assert bool(_matching_rules(app, env, "Retrain", _build_status(config, status))) is matched, status
        assert not _matching_rules(
            app, env, "Retrain", _build_status(config, "Failed", pipeline="mlops-qa-model-build")
        )
        (describe,) = [
            s
            for p in _resources(app, env, "Retrain", "AWS::IAM::ManagedPolicy").values()
            for s in p["Properties"]["PolicyDocument"]["Statement"]
            if s["Action"] == "sagemaker:DescribePipelineExecution"
        ]
        pipeline = f"arn:aws:sagemaker:{config.region}:{config.account}:pipeline/{config.build_pipeline_name}"
        assert describe["Resource"] == f"{pipeline}/execution/*"


def _alarm(config: EnvironmentConfig, kind: str, state: str = "ALARM") -> dict:
    return {
        "version": "0",
        "id": "7f1c",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": config.account,
        "time": "2026-11-23T11:00:00Z",
        "region": config.region,
        "resources": [
            f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:{config.monitoring_alarm_name(kind)}"
        ],
        "detail": {"alarmName": config.monitoring_alarm_name(kind), "state": {"value": state}},
    }


def _failed_job(config: EnvironmentConfig, name: str, schedule: str = "") -> dict:
    detail = {"ProcessingJobName": name, "ProcessingJobStatus": "Failed"}
    if schedule:
        detail["MonitoringScheduleArn"] = schedule
    return {
        "version": "0",
        "id": "9a2b",
        "detail-type": "SageMaker Processing Job State Change",
        "source": "aws.sagemaker",
        "account": config.account,
        "time": "2026-11-23T10:20:00Z",
        "region": config.region,
        "resources": [],
        "detail": detail,
    }


def _matching_rules(app: Any, env: str, stack: str, event: dict) -> list[str]:
    return [
        lid
        for lid, r in _resources(app, env, stack, "AWS::Events::Rule").items()
        if EventPattern.load(json.dumps(r["Properties"]["EventPattern"])).matches_event(event)
    ]


def test_staging_and_prod_alarms_reach_devs_retrain_rules_and_nothing_else_does(single_account) -> None:
    configs = {env: s.config for env, s in single_account.stages.items()}
    staging, prod = configs["staging"], configs["prod"]
    assert _matching_rules(single_account, "dev", "Retrain", _alarm(staging, "drift"))
    assert _matching_rules(single_account, "dev", "Retrain", _alarm(prod, "model-quality"))
    assert not _matching_rules(single_account, "dev", "Retrain", _alarm(staging, "model-quality"))  # not checked there
    assert not _matching_rules(single_account, "dev", "Retrain", _alarm(staging, "drift", state="OK"))
    other = staging.model_copy(update={"name_prefix": "mlops-qa"})
    assert not _matching_rules(single_account, "dev", "Retrain", _alarm(other, "drift"))
    assert _matching_rules(single_account, "dev", "Retrain", _failed_job(prod, "mlops-prod-monitor-dq-2026112310"))
    assert not _matching_rules(single_account, "dev", "Retrain", _failed_job(prod, "mlops-prod-model-build-eval-k3"))
    # The rule matching one endpoint's alarm is not the one matching the other's.
    assert set(_matching_rules(single_account, "dev", "Retrain", _alarm(staging, "drift"))).isdisjoint(
        _matching_rules(single_account, "dev", "Retrain", _alarm(prod, "drift"))
    )


def test_multi_account_staging_forwards_its_events_to_devs_bus_which_admits_them(multi_account) -> None:
    app = multi_account
    staging, dev = app.stages["staging"].config, app.stages["dev"].config
    bus = f"arn:aws:events:{dev.region}:{dev.account}:event-bus/default"
    forwarding = [
        r["Properties"]
        for r in _resources(app, "staging", "Endpoint", "AWS::Events::Rule").values()
        if r["Properties"]["Targets"][0]["Arn"] == bus
    ]
    assert len(forwarding) == 2 and all("RoleArn" in r["Targets"][0] for r in forwarding)
    schedule = f"arn:aws:sagemaker:{staging.region}:{staging.account}:monitoring-schedule/mlops-staging-data-quality"
    events = [_alarm(staging, "drift"), _failed_job(staging, "model-monitoring-202611231000-1ec3", schedule)]
    for event in events:
        # Forwarded from staging's account, and matched by dev's rule on arrival (the account is kept).
        assert _matching_rules(app, "staging", "Endpoint", event)
        assert _matching_rules(app, "dev", "Retrain", event)
    role_policy = [
        s
        for p in _resources(app, "staging", "Endpoint", "AWS::IAM::ManagedPolicy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "events:PutEvents"
    ]
    assert [s["Resource"] for s in role_policy] == [bus]
    (policy,) = _resources(app, "dev", "Retrain", "AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{staging.account}:root"}
    assert statement["Condition"]["StringEquals"]["events:source"] == ["aws.cloudwatch", "aws.sagemaker"]
    # prod feeds itself in its own account: nothing forwarded, no bus policy.
    assert not _resources(app, "prod", "Retrain", "AWS::Events::EventBusPolicy")
    assert not any(
        "event-bus" in json.dumps(r["Properties"]["Targets"])
        for r in _resources(app, "prod", "Endpoint", "AWS::Events::Rule").values()
    )


def test_single_account_forwards_nothing(single_account) -> None:
    for env in _monitored(single_account):
        for rule in _resources(single_account, env, "Endpoint", "AWS::Events::Rule").values():
            assert "event-bus" not in json.dumps(rule["Properties"]["Targets"])
    assert not _resources(single_account, "dev", "Retrain", "AWS::Events::EventBusPolicy")


@pytest.mark.parametrize("which", APPS)
def test_every_monitoring_queue_is_encrypted(which: str, request) -> None:
    app = request.getfixturevalue(which)
    for env, stacks in app.templates.items():
        for stack in ("Endpoint", "Retrain"):
            for queue in _resources(app, env, stack, "AWS::SQS::Queue").values() if stack in stacks else []:
                props = queue["Properties"]
                assert props.get("KmsMasterKeyId") or props.get("SqsManagedSseEnabled"), (env, stack)


def test_model_monitor_images_are_the_sdks() -> None:
    import os

    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    from sagemaker import image_uris

    from stacks.monitoring.images import REGISTRIES, model_monitor_image

    for region in REGISTRIES:
        assert model_monitor_image(region) == image_uris.retrieve("model-monitor", region=region), region
    with pytest.raises(ValueError, match="no Model Monitor image is known for xx-east-9"):
        model_monitor_image("xx-east-9")
