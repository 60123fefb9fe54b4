"""The monitoring-baseline custom resource through boto3 against a moto server (SageMaker, S3, KMS),
answering CloudFormation over https to a local server (tests/integration/lambdas/conftest.py).

Events have the shapes CloudFormation sends (Create, Update, Delete with the stack's properties,
every value a string). The model package is registered in moto as the model build registers it
(model metrics and the image tag in its metadata); its files are in a source bucket, as they are in
the source environment's artifacts bucket.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from monitoring_baseline import handler
from monitoring_baseline.baseline import LOWER_IS_BETTER, MONITORED, Materializer, quality_constraints

from tests.integration.conftest import REGION, aws_client

ACCOUNT = "123456789012"
EVALUATION = {
    "regression_metrics": {
        "rmse": {"value": 2.0, "standard_deviation": 0.1},
        "mae": {"value": 1.5, "standard_deviation": 0.1},
        "r2": {"value": 0.5, "standard_deviation": 0.01},
    }
}


@dataclass
class World:
    endpoint: str
    s3: Any
    sagemaker: Any
    source_bucket: str
    bucket: str
    key_arn: str
    package_arn: str
    files: dict[str, str]  # kind -> s3 URI in the source bucket

    def properties(self, **changes: str) -> dict[str, str]:
        return {
            "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mlops-staging-monitoring-baseline",
            "ModelPackageArn": self.package_arn,
            "StatisticsUri": self.files["statistics"],
            "ConstraintsUri": self.files["constraints"],
            "EvaluationUri": self.files["evaluation"],
            "Bucket": self.bucket,
            "Prefix": "baselines/mlops-staging-endpoint",
            "KmsKeyArn": self.key_arn,
            "ProblemType": "regression",
            "MaxQualityDegradation": "0.1",
            **changes,
        }

    def read(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def write(self, uri: str, document: object) -> None:
        """Replace a registered file with ``document`` as JSON."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())

    def materializer(self) -> Materializer:
        return Materializer(s3=self.s3, sagemaker=self.sagemaker)


@pytest.fixture
def world(moto_endpoint: str) -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    s3, sagemaker = aws_client("s3", moto_endpoint), aws_client("sagemaker", moto_endpoint)
    key_arn = aws_client("kms", moto_endpoint).create_key()["KeyMetadata"]["Arn"]
    source_bucket, bucket = f"artifacts-{tag}", f"monitoring-{tag}"
    for name in (source_bucket, bucket):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    base = f"mlops-dev-model-build/{tag}"
    bodies = {
        "statistics": json.dumps({"version": 0.0, "dataset": {"item_count": 10}, "features": []}),
        "constraints": json.dumps({"version": 0.0, "features": [], "monitoring_config": {}}),
        "evaluation": json.dumps(EVALUATION),
    }
    files = {}
    for kind, body in bodies.items():
        key = f"{base}/{kind}/{kind}.json"
        s3.put_object(Bucket=source_bucket, Key=key, Body=body.encode())
        files[kind] = f"s3://{source_bucket}/{key}"
    group = f"mlops-dev-models-{tag}"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    package = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        CustomerMetadataProperties={"image_tag": "sha-0123abcd", "source_commit": "deadbeef"},
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": files["evaluation"]}},
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": files["statistics"]},
                "Constraints": {"ContentType": "application/json", "S3Uri": files["constraints"]},
            },
        },
        InferenceSpecification={
            "Containers": [{"Image": "inference:sha-0123abcd", "ModelDataUrl": f"s3://{source_bucket}/m.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    yield World(moto_endpoint, s3, sagemaker, source_bucket, bucket, key_arn, package, files)


def cfn_event(world: World, url: str, request: str = "Create", **changes: str) -> dict:
    """The event CloudFormation sends the custom resource."""
    event: dict[str, Any] = {
        "RequestType": request,
        "ServiceToken": world.properties()["ServiceToken"],
        "ResponseURL": url,
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/mlops-staging-endpoint/{uuid.uuid4()}",
        "RequestId": str(uuid.uuid4()),
        "LogicalResourceId": "MonitoringBaseline094B5FEC",
        "ResourceType": "Custom::MonitoringBaseline",
        "ResourceProperties": world.properties(**changes),
    }
    if request != "Create":
        event["PhysicalResourceId"] = f"s3://{world.bucket}/baselines/mlops-staging-endpoint/v1-000000000000/"
    if request == "Update":
        event["OldResourceProperties"] = world.properties()
    return event


def test_a_deploy_copies_its_versions_baseline_and_derives_model_quality_constraints(
    world: World, response_sink
) -> None:
    outcome = handler.handle(cfn_event(world, response_sink.url), factory=world.materializer)
    (answer,) = response_sink.documents
    assert answer["Status"] == "SUCCESS" and outcome.delivered
    data = answer["Data"]
    assert data["ImageTag"] == "sha-0123abcd"
    assert data["BaselineUri"].startswith(f"s3://{world.bucket}/baselines/mlops-staging-endpoint/v1-")
    assert answer["PhysicalResourceId"] == data["BaselineUri"] and data["Suffix"] in data["BaselineUri"]
    for kind in ("statistics", "constraints", "evaluation"):
        assert world.read(data[f"{kind.title()}Uri"]) == world.read(world.files[kind])
    assert json.loads(world.read(data["ModelQualityConstraintsUri"])) == {
        "version": 0.0,
        "regression_constraints": {
            "rmse": {"threshold": pytest.approx(2.2), "comparison_operator": "GreaterThanThreshold"},
            "mae": {"threshold": pytest.approx(1.65), "comparison_operator": "GreaterThanThreshold"},
        },
    }
    head = world.s3.head_object(Bucket=world.bucket, Key=data["StatisticsUri"].split("/", 3)[3])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == world.key_arn
    # The same files are now the current ones, and the version file says which version they are.
    current = f"s3://{world.bucket}/baselines/mlops-staging-endpoint/current/"
    assert data["CurrentUri"] == current
    for name in ("statistics.json", "constraints.json", "evaluation.json", "model_quality_constraints.json"):
        assert world.read(f"{current}{name}") == world.read(f"{data['BaselineUri']}{name}")
    assert json.loads(world.read(f"{current}version.json")) == {
        "baseline_uri": data["BaselineUri"],
        "image_tag": "sha-0123abcd",
        "model_package_arn": world.package_arn,
    }


def test_a_new_deploy_is_a_new_folder_and_a_new_suffix(world: World, response_sink) -> None:
    handler.handle(cfn_event(world, response_sink.url), factory=world.materializer)
    handler.handle(
        cfn_event(world, response_sink.url, "Update", MaxQualityDegradation="0.2"), factory=world.materializer
    )
    first, second = (d["Data"] for d in response_sink.documents)
    assert first["BaselineUri"] != second["BaselineUri"] and first["Suffix"] != second["Suffix"]


def test_a_drift_threshold_replaces_both_comparison_thresholds_in_the_deployed_constraints(
    world: World, response_sink
) -> None:
    registered = {
        "version": 0.0,
        "features": [{"name": "length", "inferred_type": "Fractional", "completeness": 1.0}],
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
            },
        },
    }
    world.write(world.files["constraints"], registered)
    handler.handle(cfn_event(world, response_sink.url, DriftThreshold="0.25"), factory=world.materializer)
    (answer,) = response_sink.documents
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    expected = json.loads(json.dumps(registered))
    expected["monitoring_config"]["distribution_constraints"] |= {
        "comparison_threshold": 0.25,
        "categorical_comparison_threshold": 0.25,
    }
    current = f"s3://{world.bucket}/baselines/mlops-staging-endpoint/current/constraints.json"
    for uri in (answer["Data"]["ConstraintsUri"], current):
        assert json.loads(world.read(uri)) == expected
    assert json.loads(world.read(world.files["constraints"])) == registered  # the registered record is untouched


def test_unsetting_the_drift_threshold_restores_the_registered_constraints(world: World, response_sink) -> None:
    handler.handle(cfn_event(world, response_sink.url, DriftThreshold="0.3"), factory=world.materializer)
    update = cfn_event(world, response_sink.url, "Update")
    update["OldResourceProperties"] = world.properties(DriftThreshold="0.3")
    handler.handle(update, factory=world.materializer)
    assert [d["Status"] for d in response_sink.documents] == ["SUCCESS", "SUCCESS"]
    current = f"s3://{world.bucket}/baselines/mlops-staging-endpoint/current/constraints.json"
    assert world.read(current) == world.read(world.files["constraints"])


@pytest.mark.parametrize(
    ("monitoring_config", "feature", "problem"),
    [
        ({"distribution_constraints": {"perform_comparison": "Disabled"}}, {}, "drift comparison is disabled"),
        ({"distribution_constraints": {"categorical_drift_method": "ChiSquared"}}, {}, "not LInfinity"),
        ({}, {"monitoringConfigOverrides": {"comparison_threshold": 0.3}}, "features sex set their own thresholds"),
        ([], {}, "monitoring_config must be an object"),
    ],
)
def test_a_drift_threshold_the_constraints_would_not_follow_fails_the_deploy(
    world: World, response_sink, monitoring_config: object, feature: dict, problem: str
) -> None:
    constraints = {
        "version": 0.0,
        "features": [{"name": "sex", "inferred_type": "String", **feature}],
        "monitoring_config": monitoring_config,
    }
    world.write(world.files["constraints"], constraints)
    handler.handle(cfn_event(world, response_sink.url, DriftThreshold="0.2"), factory=world.materializer)
    (answer,) = response_sink.documents
    assert answer["Status"] == "FAILED" and problem in answer["Reason"], answer["Reason"]
    assert world.s3.list_objects_v2(Bucket=world.bucket).get("KeyCount", 0) == 0  # nothing half-written


def test_the_monitor_judges_drift_by_the_deployed_threshold(world: World, response_sink, tmp_path: Path) -> None:
    # ml_code.monitor on the deployed copy: a column whose distance is 0.2 drifts at the registered 0.1, not at 0.25.
    import pandas as pd

    from ml_code.baseline import build_baseline
    from ml_code.monitor.reference import load_reference
    from ml_code.monitor.run import monitor
    from ml_code.schema import DataSchema, Feature, ProblemType

    schema = DataSchema("y", ProblemType.REGRESSION, (Feature("score", "numeric"), Feature("x", "numeric")))
    reference = pd.DataFrame({"score": [1.0] * 2000, "x": [i / 20 for i in range(2000)]})
    statistics, constraints = build_baseline(reference, schema)
    world.write(world.files["statistics"], statistics)
    world.write(world.files["constraints"], constraints)
    batch = tmp_path / "batch.csv"
    batch.write_text("score,x\n" + "".join(f"1.0,{i / 20 + 20}\n" for i in range(2000)))  # x moved a fifth of its range
    verdicts = {}
    for threshold in (None, "0.25"):
        changes = {} if threshold is None else {"DriftThreshold": threshold}
        handler.handle(cfn_event(world, response_sink.url, **changes), factory=world.materializer)
        deployed = tmp_path / f"deployed-{threshold}"
        deployed.mkdir()
        data = response_sink.documents[-1]["Data"]
        for kind in ("statistics", "constraints"):
            (deployed / f"{kind}.json").write_bytes(world.read(data[f"{kind.title()}Uri"]))
        report = monitor(deployed, batch, tmp_path / f"out-{threshold}", reference=load_reference(deployed))
        verdicts[threshold] = {(v.feature_name, v.constraint_check_type) for v in report.data_quality.violations}
    assert verdicts == {None: {("x", "baseline_drift_check")}, "0.25": set()}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"ProblemType": "binary"}, "expected exactly 'binary_classification_metrics' for a binary model"),
        ({"StatisticsUri": "s3://elsewhere/statistics.json"}, "does not register these files (statistics: given"),
        ({"MaxQualityDegradation": "1.5"}, "bad properties: MaxQualityDegradation"),
        ({"DriftThreshold": "0"}, "bad properties: DriftThreshold"),
        ({"DriftThreshold": "high"}, "bad properties: DriftThreshold"),
        ({"ModelPackageArn": "not-an-arn"}, "bad properties: ModelPackageArn"),
    ],
)
def test_files_that_cannot_be_this_versions_baseline_fail_the_deploy_with_the_reason(
    world: World, response_sink, changes: dict, problem: str
) -> None:
    outcome = handler.handle(cfn_event(world, response_sink.url, **changes), factory=world.materializer)
    (answer,) = response_sink.documents
    assert answer["Status"] == "FAILED" and problem in answer["Reason"] and outcome.delivered
    assert world.s3.list_objects_v2(Bucket=world.bucket).get("KeyCount", 0) == 0  # nothing half-written


def test_a_version_without_an_image_tag_fails(world: World, response_sink) -> None:
    group = f"bare-{uuid.uuid4().hex[:6]}"
    world.sagemaker.create_model_package_group(ModelPackageGroupName=group)
    bare = world.sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": world.files["evaluation"]}},
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": world.files["statistics"]},
                "Constraints": {"ContentType": "application/json", "S3Uri": world.files["constraints"]},
            },
        },
        InferenceSpecification={
            "Containers": [{"Image": "inference:x"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    handler.handle(cfn_event(world, response_sink.url, ModelPackageArn=bare), factory=world.materializer)
    (answer,) = response_sink.documents
    assert answer["Status"] == "FAILED" and "has no image_tag" in answer["Reason"]


def test_delete_answers_success_and_keeps_the_record(world: World, response_sink) -> None:
    handler.handle(cfn_event(world, response_sink.url), factory=world.materializer)
    handler.handle(cfn_event(world, response_sink.url, "Delete"), factory=world.materializer)
    assert [d["Status"] for d in response_sink.documents] == ["SUCCESS", "SUCCESS"]
    assert world.s3.list_objects_v2(Bucket=world.bucket)["KeyCount"] == 9  # 4 versioned, 4 current, version.json


def test_an_event_that_cannot_be_answered_is_raised_for_lambdas_retry(world: World) -> None:
    event = cfn_event(world, "http://127.0.0.1:9/response")  # not https: not an answer channel
    with pytest.raises(handler.ResponseNotDelivered):
        handler.lambda_handler(event, _context())


def test_an_unreadable_delete_still_succeeds_and_an_unreadable_create_fails(world: World, response_sink) -> None:
    for request in ("Delete", "Create"):
        handler.handle({"RequestType": request, "ResponseURL": response_sink.url}, factory=world.materializer)
    delete, create = response_sink.documents
    assert delete["Status"] == "SUCCESS" and delete["Reason"].startswith("nothing to delete")
    assert create["Status"] == "FAILED" and create["Reason"].startswith("bad event")


def _context() -> Any:
    from tests.integration.lambdas.conftest import LambdaContextStandIn

    return LambdaContextStandIn(function_name="mlops-staging-monitoring-baseline")


# --- the same thresholds as ml_code.monitor ------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "section"),
    [
        ("regression", {"rmse": {"value": 2.0}, "mae": {"value": 1.5}}),
        ("binary", {"accuracy": {"value": 0.9}, "f1": {"value": 0.8}}),
        ("multiclass", {"accuracy": {"value": 0.7}, "weighted_f1": {"value": 0.6}}),
    ],
)
def test_model_monitor_constraints_violate_exactly_where_ml_code_monitor_does(
    problem: str, section: dict, tmp_path: Path
) -> None:
    # The two engines judge model quality alike: Model Monitor by the constraints the deploy writes,
    # the platform by ml_code.monitor's comparison. Just past each threshold both flag, just before neither.
    from ml_code.monitor.model_quality import LOWER_IS_BETTER as ML_LOWER
    from ml_code.monitor.model_quality import MONITORED as ML_MONITORED
    from ml_code.monitor.model_quality import compare_with_evaluation, load_evaluation
    from ml_code.schema import ProblemType

    assert {p.value: names for p, names in ML_MONITORED.items()} == MONITORED
    assert ML_LOWER == LOWER_IS_BETTER
    key = {"regression": "regression_metrics", "binary": "binary_classification_metrics"}.get(
        problem, "multiclass_classification_metrics"
    )
    constraints = quality_constraints({key: section}, problem, 0.1)
    (body,) = (v for k, v in constraints.items() if k.endswith("_constraints"))
    assert sorted(body) == sorted(section)
    (tmp_path / "evaluation.json").write_text(json.dumps({key: section}))
    evaluation = load_evaluation(tmp_path / "evaluation.json")
    for name, constraint in body.items():
        worse = 1 if constraint["comparison_operator"] == "GreaterThanThreshold" else -1
        for delta, violated in ((worse * 1e-9, True), (-worse * 1e-9, False)):
            scores = {n: section[n]["value"] for n in section} | {name: constraint["threshold"] + delta}
            flagged = {v.metric_name for v in compare_with_evaluation(scores, evaluation, ProblemType(problem), 0.1, 1)}
            assert (name in flagged) is violated, (problem, name, delta)
