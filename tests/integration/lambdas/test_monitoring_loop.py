"""The whole loop offline, from a deploy to a started retrain, with what the stacks synthesize as its settings.

Single-account prod (platform engine, hourly, model quality) is fed by dev's registry; dev holds the
retrain function. Every setting below is read from the synthesized templates (the functions' environment,
the custom resource's properties, the alarm, the rules), so the loop runs as deployed:

1. a model trained on the sample data by ``python -m ml_code.local_run`` is registered in moto's SageMaker as
   the model build registers it; its baseline and evaluation sit in the source's artifacts bucket;
2. the deploy's custom resource copies them into prod's monitoring bucket (the baseline function);
3. the model server's own answers to drifted traffic (every ``length`` scaled by 1.6) are captured in
   SageMaker's format at 09:xx, and labelled;
4. Scheduler's 10:10 invocation makes the launcher create the processing job in moto;
5. the job runs as SageMaker would run it: its S3 inputs downloaded to its local paths, its entrypoint
   (``python -m ml_code.monitor ...``) run as a process, its output uploaded to its S3 output;
6. its state change makes the results function publish to moto's CloudWatch;
7. the drift alarm's condition is evaluated on those datapoints as CloudWatch would (Maximum over the
   period against the threshold), and its state change, built from the synthesized alarm, matches dev's
   retrain rule (moto's EventBridge pattern matching);
8. the retrain handler starts dev's build pipeline in moto, recording the alarm, the model version and the
   run's violations file.

Not exercised: SageMaker running the job, CloudWatch evaluating the alarm, EventBridge and Scheduler
delivering (moto implements none of them).
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moto.events.models import EventPattern

from tests.integration.conftest import REGION, ROOT, aws_client
from tests.integration.lambdas.conftest import processing_job_state_change
from tools.local_aws.processing import run_processing_job, upload_tree
from tools.local_aws.templates import only, placeholders, resolve

pytestmark = pytest.mark.slow
ENV, SOURCE = "prod", "dev"


def _capture(
    model_dir: Path, rows: list[list[str]], header: list[str], root: Path, endpoint: str, when: datetime
) -> list[tuple[str, str]]:
    """The server's answers to these rows, captured as SageMaker does; returns (inference id, label) pairs."""
    from ml_code.monitor import CaptureWriter
    from ml_code.serving.inference import input_fn, model_fn, output_fn, predict_fn

    model = model_fn(model_dir)
    writer = CaptureWriter(root, endpoint, "primary", clock=lambda: when)
    target, length = header.index("rings"), header.index("length")
    labels = []
    for number, row in enumerate(rows):
        features = [v for i, v in enumerate(row) if i != target]
        features[length] = f"{float(row[length]) * 1.6:.4f}"  # the drift: every length 60% longer
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(features)
        body = buffer.getvalue().encode()
        answer = output_fn(predict_fn(input_fn(body, "text/csv", model), model), "text/csv")
        inference = f"request-{number}"
        writer.write(body, "text/csv", answer, "text/csv", inference_id=inference)
        labels.append((inference, row[target]))
    return labels


def test_drifted_traffic_retrains_the_source_build(
    single_account, trained_run, moto_endpoint: str, response_sink, tmp_path: Path
) -> None:
    from model_retrain.events import AlarmStateChange
    from model_retrain.events import Settings as RetrainSettings
    from model_retrain.retrain import Retrainer
    from monitoring_baseline import handler as baseline_handler
    from monitoring_baseline.baseline import Materializer
    from monitoring_launcher.events import ScheduledRun
    from monitoring_launcher.events import Settings as LauncherSettings
    from monitoring_launcher.launcher import Launcher
    from monitoring_results.events import ProcessingJobStateChange
    from monitoring_results.events import Settings as ResultsSettings
    from monitoring_results.results import Results

    stage, source = single_account.stages[ENV], single_account.stages[SOURCE].config
    config = stage.config
    endpoint_template = single_account.templates[ENV]["Endpoint"]
    retrain_template = single_account.templates[SOURCE]["Retrain"]
    s3, sagemaker = aws_client("s3", moto_endpoint), aws_client("sagemaker", moto_endpoint)
    cloudwatch = aws_client("cloudwatch", moto_endpoint)
    key = aws_client("kms", moto_endpoint).create_key()["KeyMetadata"]["Arn"]
    run_dir = trained_run[0]

    # 1. The version, as the model build registers it in the source (dev), its files in dev's artifacts bucket.
    artifacts, monitoring = source.bucket_name("artifacts"), config.bucket_name("monitoring")
    for bucket in (artifacts, monitoring):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    files = {
        "statistics": run_dir / "baseline" / "statistics.json",
        "constraints": run_dir / "baseline" / "constraints.json",
        "evaluation": run_dir / "evaluation.json",
    }
    uris = {}
    for kind, path in files.items():
        key_name = f"{source.build_pipeline_name}/exec-1/{kind}/{path.name}"
        s3.put_object(Bucket=artifacts, Key=key_name, Body=path.read_bytes())
        uris[kind] = f"s3://{artifacts}/{key_name}"
    group = f"{source.model_package_group_name}-{uuid.uuid4().hex[:6]}"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    package = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        CustomerMetadataProperties={"image_tag": "sha-loop"},
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uris["evaluation"]}},
            "ModelDataQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": uris["statistics"]},
                "Constraints": {"ContentType": "application/json", "S3Uri": uris["constraints"]},
            },
        },
        InferenceSpecification={
            "Containers": [{"Image": "inference:sha-loop"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]
    data_key_export = only(endpoint_template, "Custom::MonitoringBaseline")[1]["Properties"]["KmsKeyArn"][
        "Fn::ImportValue"
    ]
    known: dict[str, str] = {
        "ModelPackageArn": package,
        "DataBaselineStatisticsUri": uris["statistics"],
        "DataBaselineConstraintsUri": uris["constraints"],
        "ModelEvaluationUri": uris["evaluation"],
        data_key_export: key,
        "AWS::URLSuffix": "amazonaws.com",
    }

    # 2. The deploy: CloudFormation calls the baseline custom resource with the stack's properties.
    baseline_id, baseline = only(endpoint_template, "Custom::MonitoringBaseline")
    properties = resolve({k: v for k, v in baseline["Properties"].items() if k != "ServiceToken"}, known)
    event = {
        "RequestType": "Create",
        "ResponseURL": response_sink.url,
        "StackId": "arn:aws:cloudformation:eu-west-1:111111111111:stack/mlops-prod-endpoint/1",
        "RequestId": "deploy-1",
        "LogicalResourceId": baseline_id,
        "ResourceType": "Custom::MonitoringBaseline",
        "ServiceToken": "arn:aws:lambda:eu-west-1:111111111111:function:mlops-prod-monitoring-baseline",
        "ResourceProperties": properties,
    }
    baseline_handler.handle(event, factory=lambda: Materializer(s3=s3, sagemaker=sagemaker))
    (answer,) = response_sink.documents
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    known |= {f"{baseline_id}.{name}": value for name, value in answer["Data"].items()}

    # 3. Drifted traffic through the model server, captured at 09:30 and labelled at 09:40 (prod's 24 h delay
    #    puts the model-quality window a day back: capture it there too).
    header, *rows = list(csv.reader((ROOT / "data" / "abalone.csv").read_text().splitlines()))
    rows = random.Random(11).sample(rows, 1200)  # the file is ordered: a sample is what traffic looks like
    capture_root = tmp_path / "capture"
    _capture(
        run_dir / "model",
        rows[:600],
        header,
        capture_root,
        config.endpoint_name,
        datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
    )
    labels = _capture(
        run_dir / "model",
        rows[600:1200],
        header,
        capture_root,
        config.endpoint_name,
        datetime(2026, 11, 22, 9, 30, tzinfo=UTC),
    )
    upload_tree(s3, capture_root, monitoring, f"{config.capture_prefix}/")
    truth = "".join(
        json.dumps(
            {
                "groundTruthData": {"data": label, "encoding": "CSV"},
                "eventMetadata": {"eventId": inference},
                "eventVersion": "0",
            }
        )
        + "\n"
        for inference, label in labels
    )
    s3.put_object(
        Bucket=monitoring, Key=f"{config.ground_truth_prefix}/2026/11/23/08/labels.jsonl", Body=truth.encode()
    )

    # 4. Scheduler's invocations at 10:10: the launcher as configured by the stack.
    launcher_fn = only(
        endpoint_template, "AWS::Lambda::Function", FunctionName=f"{config.name_prefix}-monitoring-launcher"
    )[1]
    variables = resolve(launcher_fn["Properties"]["Environment"]["Variables"], placeholders(endpoint_template) | known)
    launcher = Launcher(LauncherSettings.model_validate(variables), s3=s3, sagemaker=sagemaker)
    results_fn = only(
        endpoint_template, "AWS::Lambda::Function", FunctionName=f"{config.name_prefix}-monitoring-results"
    )[1]
    results = Results(
        ResultsSettings.model_validate(resolve(results_fn["Properties"]["Environment"]["Variables"], known)),
        s3=s3,
        cloudwatch=cloudwatch,
    )
    published = {}
    for check in ("data-quality", "model-quality"):
        run = ScheduledRun.model_validate(
            {"check": check, "scheduled_time": "2026-11-23T10:10:00Z", "schedule_arn": "x", "execution_id": "y"}
        )
        launch = launcher.launch(run)
        assert launch.action == "started", launch.reason
        job = sagemaker.describe_processing_job(ProcessingJobName=launch.job_name)
        # 5. The job, run as SageMaker runs it.
        assert job["AppSpecification"]["ContainerEntrypoint"][:3] == ["python3", "-m", "ml_code.monitor"]
        done = run_processing_job(s3, job, tmp_path / check, timeout=300)
        assert done.returncode == 0, done.stderr
        # 6. Its state change, to the results function.
        outcome = results.on_job(ProcessingJobStateChange.model_validate(processing_job_state_change(job)))
        assert outcome.action == "published", outcome.reason
        published[check] = outcome
    data_quality, model_quality = published["data-quality"], published["model-quality"]
    assert data_quality.metrics["baseline_drift_violations"] >= 1
    assert data_quality.metrics["feature_baseline_drift_length"] > 0.1
    report = data_quality.report.removeprefix(f"s3://{monitoring}/")
    violations = json.loads(s3.get_object(Bucket=monitoring, Key=f"{report}constraint_violations.json")["Body"].read())
    drifted = {
        v["feature_name"] for v in violations["violations"] if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert "length" in drifted
    assert {"rmse", "mae", "model_quality_violations"} <= set(model_quality.metrics)

    # 7. The drift alarm as synthesized, evaluated on the published datapoints as CloudWatch would.
    _, alarm = only(endpoint_template, "AWS::CloudWatch::Alarm", AlarmName=config.monitoring_alarm_name("drift"))
    props = alarm["Properties"]
    (stat,) = [m["MetricStat"] for m in props["Metrics"]]
    datapoints = cloudwatch.get_metric_statistics(
        Namespace=stat["Metric"]["Namespace"],
        MetricName=stat["Metric"]["MetricName"],
        Dimensions=stat["Metric"]["Dimensions"],
        StartTime=datetime(2026, 11, 23, 10, tzinfo=UTC),
        EndTime=datetime(2026, 11, 23, 11, tzinfo=UTC),
        Period=stat["Period"],
        Statistics=[stat["Stat"]],
    )["Datapoints"]
    (point,) = datapoints
    assert point["Maximum"] >= props["Threshold"]  # GreaterThanOrEqualToThreshold: ALARM
    alarm_event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": config.account,
        "time": "2026-11-23T11:00:00Z",
        "region": config.region,
        "resources": [f"arn:aws:cloudwatch:{config.region}:{config.account}:alarm:{props['AlarmName']}"],
        "detail": {
            "alarmName": props["AlarmName"],
            "state": {"value": "ALARM", "reason": f"Threshold Crossed: 1 datapoint [{point['Maximum']}]"},
            "previousState": {"value": "OK"},
            "configuration": {
                "description": resolve(props["AlarmDescription"], known),
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": stat["Metric"]["Namespace"],
                                "name": stat["Metric"]["MetricName"],
                                "dimensions": {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]},
                            },
                            "period": stat["Period"],
                            "stat": stat["Stat"],
                        },
                        "returnData": True,
                    }
                ],
            },
        },
    }
    rules = [
        r
        for r in retrain_template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
        and EventPattern.load(json.dumps(r["Properties"]["EventPattern"])).matches_event(alarm_event)
    ]
    assert len(rules) == 1

    # 8. The retrain function, as configured in dev, starts dev's build.
    retrain_fn = only(retrain_template, "AWS::Lambda::Function", FunctionName=f"{source.name_prefix}-model-retrain")[1]
    pipeline = retrain_fn["Properties"]["Environment"]["Variables"]["PIPELINE_NAME"]
    assert pipeline == source.build_pipeline_name
    if pipeline not in [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]]:
        role = "arn:aws:iam::123456789012:role/pipeline"
        sagemaker.create_pipeline(PipelineName=pipeline, PipelineDefinition=json.dumps({"Steps": []}), RoleArn=role)
    dynamodb, sns = aws_client("dynamodb", moto_endpoint), aws_client("sns", moto_endpoint)
    table = f"{source.name_prefix}-model-retrain-{uuid.uuid4().hex[:6]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic = sns.create_topic(Name=table)["TopicArn"]
    settings = RetrainSettings.model_validate(
        {
            "PIPELINE_NAME": pipeline,
            "TOPIC_ARN": topic,
            "TABLE_NAME": table,
            "COOLDOWN_HOURS": retrain_fn["Properties"]["Environment"]["Variables"]["COOLDOWN_HOURS"],
        }
    )
    decision = Retrainer(settings, sagemaker=sagemaker, dynamodb=dynamodb, sns=sns, s3=s3).on_alarm(
        AlarmStateChange.model_validate(alarm_event)
    )
    assert decision.action == "started" and decision.model == config.endpoint_name
    execution = sagemaker.describe_pipeline_execution(PipelineExecutionArn=decision.execution_arn)
    description = execution["PipelineExecutionDescription"]
    assert f"model {package}" in description
    assert f"violations {data_quality.report}constraint_violations.json" in description
