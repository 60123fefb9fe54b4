"""The whole loop on one machine: train, register, approve, deploy, traffic, drift, retrain, redeploy.

Every step is done by the code that does it in AWS, configured from the synthesized templates in
``cdk.out`` (the deploy's state machine and its functions' settings, the monitoring functions'
environments, the alarms, the rules), against a moto server on 127.0.0.1 that stands in for
SageMaker, S3, DynamoDB, SNS, Step Functions and CloudWatch. What AWS itself would do, and moto does
not, is done here in the open and said so when it happens:

- **endpoints** are the real model server (``python -m ml_code.serve``, data capture on) behind a
  router that switches blue/green (``tools/local_aws/endpoints.py``);
- **the deploy's state machine** runs in a local interpreter of its synthesized definition, its tasks
  the deploy's own handler (``tools/local_aws/stepfunctions.py``);
- **processing jobs** (the platform's monitor) run as SageMaker runs them: inputs from S3, the
  container's entrypoint as a process, outputs to S3 (``tools/local_aws/processing.py``);
- **events** are built in AWS's documented shapes and handed to the function whose synthesized rule
  matches them (moto's pattern engine); **alarms** are evaluated on the published datapoints with the
  synthesized alarm's own statistic, period and threshold (moto evaluates none);
- **the clock**: each traffic phase is one hour of simulated time; the server's capture files are
  uploaded to the monitoring bucket under that hour, as SageMaker files them by hour;
- **the build**: the retrain starts dev's SageMaker Pipeline in moto (which reports it done at once);
  the build itself is ``python -m ml_code.local_run`` on the retrain's data, registered as the
  pipeline's register step would.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import random
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lambdas"))  # the functions, as Lambda sees them

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from ml_code.serving.readiness import free_port  # noqa: E402
from stacks.config import EnvironmentConfig, ecr_registry, load_config  # noqa: E402
from tools.local_aws.endpoints import LocalEndpoint, LocalStage  # noqa: E402
from tools.local_aws.events import alarm_state_change, job_state_change, matching_rules, package_state_change  # noqa: E402
from tools.local_aws.processing import run_processing_job  # noqa: E402
from tools.local_aws.stepfunctions import LocalStateMachine, definition_from_template  # noqa: E402
from tools.local_aws.templates import Assembly, only, placeholders, resolve  # noqa: E402
from tools.sample_model import local_run_command  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account: the shipped configs' placeholder account is not one moto serves
SAMPLE = ROOT / "data" / "abalone.csv"
REGISTRY, WATCHED = "dev", "prod"
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # the simulated clock's first hour


class StepFailed(RuntimeError):
    """A step of the loop failed; the message names it."""


@dataclass
class Event:
    """One line of the timeline."""

    at: float
    step: str
    text: str


@dataclass
class Window:
    """One simulated hour of traffic on the watched endpoint, and what monitoring said of it."""

    label: str
    hour: datetime
    version: int
    drift: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)
    violations: int = 0
    alarms: list[str] = field(default_factory=list)  # the alarms it set off


class Timeline:
    """What happened, with timestamps from the loop's start; printed as it happens."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self.start = time.monotonic()
        self.events: list[Event] = []
        self.echo = echo

    def __call__(self, step: str, text: str) -> None:
        event = Event(time.monotonic() - self.start, step, text)
        self.events.append(event)
        self.echo(f"[{event.at:6.1f} s] {step:<9} {text}")


class Loop:
    """The loop's world: the local AWS, the endpoints, the functions; ``close`` stops everything it started."""

    def __init__(self, *, cdk_out: Path, work: Path, timeline: Timeline, quick: bool = False) -> None:
        self.work, self.timeline, self.quick = work, timeline, quick
        self.assembly = Assembly.read(cdk_out)
        self.configs: dict[str, EnvironmentConfig] = {
            name: load_config(ROOT / "config" / f"{name}.yaml") for name in ("dev", "staging", "prod")
        }
        self.windows: list[Window] = []
        self.marks: list[tuple[str, float]] = []  # (what, where between the windows' positions 0, 1, ...)
        self.endpoints: dict[str, LocalEndpoint] = {}
        self._moto: ThreadedMotoServer | None = None
        self._saved_env: dict[str, str | None] = {}
        self.switch_failures = 0

    # --- the local AWS --------------------------------------------------------------------------

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server would log every request
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        self._moto.start()
        endpoint = f"http://127.0.0.1:{self._moto._port}"
        # moto keeps its state per process, not per server: the loop's world starts empty even when
        # another moto server in this process (a test's) has created resources with the same names.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
        # The platform's code builds its own clients, as in Lambda: it finds the local AWS by the environment.
        for name, value in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            # The functions' structured logs would drown the timeline; errors still show.
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_NAMESPACE": "AWS-MLOps",
            "POWERTOOLS_DEV": "false",
        }.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        self.endpoint_url = endpoint
        config = Config(retries={"mode": "standard", "max_attempts": 3})
        self.c = {
            s: boto3.client(s, region_name=REGION, endpoint_url=endpoint, config=config)
            for s in ("s3", "sagemaker", "sns", "sqs", "dynamodb", "stepfunctions", "cloudwatch", "kms", "events")
        }
        self.timeline(
            "aws", f"moto server on {endpoint} stands in for SageMaker, S3, DynamoDB, SNS, Step Functions, CloudWatch"
        )

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.close()
        self.endpoints.clear()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    # --- templates ------------------------------------------------------------------------------

    def _function_environment(self, env: str, stack: str, name: str) -> dict[str, Any]:
        """A function's environment as synthesized, its references resolved to what they are here."""
        template = self.assembly.template(env, stack)
        _, function = only(template, "AWS::Lambda::Function", FunctionName=name)
        return dict(resolve(function["Properties"]["Environment"]["Variables"], self._known(template)))

    def _known(self, template: dict[str, Any]) -> dict[str, Any]:
        known = placeholders(template)
        for export in [e for e in known if "DataKey" in e]:
            known[export] = getattr(self, "data_key", known[export])
        return known

    def _tasks_environment(self) -> dict[str, Any]:
        return self._function_environment(REGISTRY, "Deploy", self.configs[REGISTRY].deploy_tasks_function_name)

    # --- setting the world up -------------------------------------------------------------------

    def provision(self) -> None:
        """What `make deploy` would have created, in moto: buckets, key, registry, tables, topics, the pipeline."""
        c, dev = self.c, self.configs[REGISTRY]
        self.data_key = c["kms"].create_key(Description="the data key")["KeyMetadata"]["Arn"]
        buckets = {dev.bucket_name("artifacts")} | {
            self.configs[n].bucket_name("monitoring") for n in ("staging", "prod")
        }
        for bucket in sorted(buckets):
            c["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        c["sagemaker"].create_model_package_group(ModelPackageGroupName=dev.model_package_group_name)
        # The deploy's table and topic, the retrain's, each as named in the synthesized environments.
        tasks = self._tasks_environment()
        retrain = self._function_environment(REGISTRY, "Retrain", dev.retrain_function_name)
        self.queue = c["sqs"].create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = c["sqs"].get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.topics: dict[str, str] = {}
        for purpose, table, topic_name in (
            ("deploy", tasks["TABLE_NAME"], dev.deploy_topic_name),
            ("retrain", retrain["TABLE_NAME"], dev.retrain_function_name),
        ):
            c["dynamodb"].create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            arn = c["sns"].create_topic(Name=topic_name)["TopicArn"]
            c["sns"].subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
            self.topics[purpose] = arn
        # dev's model-build pipeline, from the definition `make pipeline-definition` wrote.
        definition = ROOT / "cdk.out" / "pipelines" / f"{REGISTRY}.json"
        body = definition.read_text() if definition.is_file() else json.dumps({"Version": "2020-12-01", "Steps": []})
        c["sagemaker"].create_pipeline(
            PipelineName=dev.build_pipeline_name,
            PipelineDefinition=body,
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{dev.pipeline_role_name}",
        )
        self._deploy_machine()
        self.timeline(
            "aws",
            f"created what make deploy would: {', '.join(sorted(buckets))}; registry {dev.model_package_group_name}; "
            f"pipeline {dev.build_pipeline_name}; the deploy's and the retrain's tables and topics",
        )

    def _deploy_machine(self) -> None:
        """The deploy state machine as synthesized, its tasks run by the deploy's own handler."""
        from model_deploy import handler as deploy_handler
        from model_deploy.deploy import Deployer
        from model_deploy.events import Settings as DeploySettings
        from model_deploy.registry import Registry

        dev = self.configs[REGISTRY]
        template = self.assembly.template(REGISTRY, "Deploy")
        machine_id, _ = only(template, "AWS::StepFunctions::StateMachine")
        tasks_id, _ = only(template, "AWS::Lambda::Function", FunctionName=dev.deploy_tasks_function_name)
        function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{dev.deploy_tasks_function_name}"
        definition = definition_from_template(template, machine_id, {tasks_id: function_arn})
        arn = self.c["stepfunctions"].create_state_machine(
            name=dev.deploy_state_machine_name,
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{dev.deploy_role_name}",
        )["stateMachineArn"]
        environment = {**self._tasks_environment(), "TOPIC_ARN": self.topics["deploy"], "STATE_MACHINE_ARN": arn}
        settings = DeploySettings.model_validate(environment)
        self.stages: dict[str, LocalStage] = {}
        for stage in settings.stages:
            monitored = self.configs[stage.name].monitoring is not None
            endpoint = LocalEndpoint(
                stage.endpoint_name,
                work_dir=self.work / "endpoints",
                capture_root=self.work / "capture" if monitored else None,
                bake_seconds=0.5,
            )
            self.endpoints[stage.name] = endpoint
            self.stages[stage.name] = LocalStage(
                stage,
                endpoint=endpoint,
                sagemaker=self.c["sagemaker"],
                s3=self.c["s3"],
                on_update=self._baseline_of(stage.name) if monitored else None,
            )
        self.deployer = Deployer(
            settings,
            registry=Registry(self.c["sagemaker"], dev.model_package_group_name),
            stage=lambda s, _id: self.stages[s.name],
            s3=self.c["s3"],
            sns=self.c["sns"],
            dynamodb=self.c["dynamodb"],
            stepfunctions=self.c["stepfunctions"],
        )
        self.machine = LocalStateMachine(
            definition,
            arn=arn,
            handlers={function_arn: lambda payload: self.deployer.run(deploy_handler.parse_task(payload))},
            wait_scale=0.02,
            on_state=self._on_state,
        )
        self.deploy_rule_template = template

    def _on_state(self, name: str, kind: str) -> None:
        if kind == "Task" and name in ("Update", "SmokeTest", "Approval", "Verify"):
            self.timeline("deploy", f"state machine: {name}")

    # --- build and register --------------------------------------------------------------------

    def train(self, data: Path, output: Path, label: str) -> dict[str, Any]:
        """``python -m ml_code.local_run``: the model build's steps through their SageMaker contract."""
        command = local_run_command(
            output, data=data, extra=["--max-trials", "2", "--time-budget", "60"] if self.quick else []
        )
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            raise StepFailed(f"training ({label}) failed: {done.stderr.strip()[-500:]}")
        evaluation = json.loads((output / "evaluation.json").read_text())
        rmse = evaluation["regression_metrics"]["rmse"]["value"]
        self.timeline("build", f"{label}: local_run trained on {data.name} (test RMSE {rmse:.3f})")
        return evaluation

    def register(self, run: Path, *, build: str, why: str) -> str:
        """Upload the run's model, evaluation, baselines and test split; register it PendingManualApproval."""
        c, dev = self.c, self.configs[REGISTRY]
        bucket, base = dev.bucket_name("artifacts"), f"{dev.build_pipeline_name}/{build}"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for path in sorted((run / "model").iterdir()):
                tar.add(path, arcname=path.name)
        uploads = {
            f"{base}/model/model.tar.gz": archive.getvalue(),
            f"{base}/evaluation/evaluation.json": (run / "evaluation.json").read_bytes(),
            f"{base}/baseline/statistics.json": (run / "baseline" / "statistics.json").read_bytes(),
            f"{base}/baseline/constraints.json": (run / "baseline" / "constraints.json").read_bytes(),
            f"{base}/test/test.csv": (run / ".jobs" / "preprocess" / "output" / "test" / "test.csv").read_bytes(),
        }
        for key, body in uploads.items():
            c["s3"].put_object(Bucket=bucket, Key=key, Body=body)
        uri = f"s3://{bucket}/{base}"
        lineage = json.loads((run / "evaluation.json").read_text()).get("lineage", {})
        arn = c["sagemaker"].create_model_package(
            ModelPackageGroupName=dev.model_package_group_name,
            ModelApprovalStatus="PendingManualApproval",
            ModelPackageDescription=f"{dev.build_pipeline_name}: regression model of rings",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": f"{ecr_registry(ACCOUNT, REGION)}/{dev.repository_name('inference')}:local",
                        "ModelDataUrl": f"{uri}/model/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["text/csv", "application/json"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"{uri}/evaluation/evaluation.json"}
                },
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"{uri}/baseline/statistics.json"},
                    "Constraints": {"ContentType": "application/json", "S3Uri": f"{uri}/baseline/constraints.json"},
                },
            },
            CustomerMetadataProperties={
                "image_tag": "local",
                "target": "rings",
                "problem_type": "regression",
                "test_data_uri": f"{uri}/test",
                "data_sha256": str(lineage.get("data_sha256", "unknown"))[:256],
                "built_for": why[:256],
            },
        )["ModelPackageArn"]
        version = int(arn.rsplit("/", 1)[1])
        self.timeline("register", f"v{version} registered PendingManualApproval ({why})")
        return arn

    # --- approve and deploy ----------------------------------------------------------------------

    def approve_and_deploy(self, arn: str, *, traffic_during: Callable[[], Any] | None = None) -> None:
        """A person approves ``arn``; the event goes to the deploy's trigger; the state machine runs the stages."""
        from model_deploy.events import ModelPackageStateChange

        from pipelines import approve

        c, dev = self.c, self.configs[REGISTRY]
        version = int(arn.rsplit("/", 1)[1])
        metadata = c["sagemaker"].describe_model_package(ModelPackageName=arn).get("CustomerMetadataProperties", {})
        # moto's UpdateModelPackage drops the metadata it is not given (SageMaker keeps it): give it back.
        c["sagemaker"].update_model_package(
            ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataProperties=metadata
        )
        package = c["sagemaker"].describe_model_package(ModelPackageName=arn)
        event = package_state_change(package, dev.account, REGION)  # sent in the registry's account
        rules = matching_rules(self.deploy_rule_template, event)
        if len(rules) != 1:
            raise StepFailed(f"the approval event of v{version} matched {len(rules)} of the deploy's rules")
        self.timeline("approve", f"bob approves v{version}; its event matches the synthesized rule {rules[0]}")
        decision = self.deployer.on_package_change(ModelPackageStateChange.model_validate(event))
        if decision.action != "started":
            raise StepFailed(f"the trigger did not start a deploy: {decision.reason}")
        plan = json.loads(c["stepfunctions"].describe_execution(executionArn=decision.execution_arn)["input"])
        self.timeline("deploy", f"trigger started {decision.execution_arn.rsplit(':', 1)[1]}: {decision.reason}")

        stop = threading.Event()

        def person() -> None:  # approves prod when the deploy asks, as a person would with pipelines.approve
            while not stop.is_set():
                if self.machine.waiting_tokens() and approve.waiting(dev, c["dynamodb"], "prod"):
                    decided = approve.decide(
                        dev,
                        stage="prod",
                        approve=True,
                        reason="smoke test passed on staging",
                        version=version,
                        dynamodb=c["dynamodb"],
                        stepfunctions=self.machine,
                        caller=f"arn:aws:iam::{ACCOUNT}:role/bob",
                    )
                    self.timeline("approve", f"bob approves v{decided.version} for prod (python -m pipelines.approve)")
                stop.wait(0.05)

        helper = threading.Thread(target=person, daemon=True)
        helper.start()
        load = traffic_during() if traffic_during else None
        try:
            execution = self.machine.start(plan, name=decision.execution_arn.rsplit(":", 1)[1])
        finally:
            stop.set()
            helper.join(timeout=5)
            if load is not None:
                load.stop()
        c["stepfunctions"].stop_execution(executionArn=decision.execution_arn)  # the local run is over
        if execution.status != "SUCCEEDED":
            why = "; ".join(f"{state}: {error}: {cause}" for state, error, cause in execution.caught)
            raise StepFailed(f"the deploy of v{version} failed: {execution.error} ({why or execution.cause})")
        served = {name: stage.served().package_arn.rsplit("/", 1)[1] for name, stage in self.stages.items()}
        self.timeline("deploy", f"v{version} serves in " + ", ".join(f"{n} (v{v})" for n, v in served.items()))
        if load is not None:
            self.timeline(
                "traffic",
                f"during the switch: {load.sent} requests to prod, {load.failed} failed "
                f"(old server stopped after the switch)",
            )
            self.switch_failures = load.failed

    def _baseline_of(self, stage: str) -> Callable[[Any, str], None]:
        """What a CloudFormation update of the stage's stack does to its monitoring: the baseline custom resource."""
        from monitoring_baseline import handler as baseline_handler
        from monitoring_baseline.baseline import Materializer

        def apply(package: Any, deploy_id: str) -> None:
            template = self.assembly.template(stage, "Endpoint")
            logical_id, resource = only(template, "Custom::MonitoringBaseline")
            known = self._known(template) | {
                "ModelPackageArn": package.version.arn,
                "DataBaselineStatisticsUri": package.statistics_uri,
                "DataBaselineConstraintsUri": package.constraints_uri,
                "ModelEvaluationUri": package.evaluation_uri,
                "DeployId": deploy_id,
            }
            properties = resolve({k: v for k, v in resource["Properties"].items() if k != "ServiceToken"}, known)
            answers: list[dict[str, Any]] = []
            stack_name = self.configs[stage].endpoint_stack_name
            event = {
                "RequestType": "Update",
                "ResponseURL": "https://cloudformation-custom-resource-response.local/answer",
                "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack_name}/1",
                "RequestId": f"deploy-{deploy_id}",
                "LogicalResourceId": logical_id,
                "PhysicalResourceId": f"monitoring-baseline-{logical_id}",
                "ResourceType": "Custom::MonitoringBaseline",
                "ServiceToken": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:baseline",
                "ResourceProperties": properties,
                "OldResourceProperties": properties,
            }
            outcome = baseline_handler.handle(
                event,
                factory=lambda: Materializer(s3=self.c["s3"], sagemaker=self.c["sagemaker"]),
                respond=lambda _url, body: answers.append(json.loads(body)),
            )
            if outcome.status != "SUCCESS":
                raise StepFailed(f"{stage}: the monitoring baseline of v{package.version.number}: {outcome.reason}")
            self.timeline("deploy", f"{stage}: monitoring now judges by v{package.version.number}'s baseline")

        return apply

    # --- traffic -------------------------------------------------------------------------------

    def send(self, rows: list[list[str]], header: list[str], *, label: str, hour: datetime, labelled: float) -> None:
        """Send ``rows`` (target column included) to prod, one request each; label a share of them."""
        port = self.endpoints[WATCHED].router.port
        target = header.index("rings")
        truth, failed = [], 0
        connection = _Connection(port)
        for number, row in enumerate(rows):
            features = [v for i, v in enumerate(row) if i != target]
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="").writerow(features)
            inference = f"{label}-{number}"
            status, _ = connection.post(buffer.getvalue().encode(), inference)
            failed += status != 200
            if number % int(1 / labelled) == 0:
                truth.append(
                    {
                        "groundTruthData": {"data": row[target], "encoding": "CSV"},
                        "eventMetadata": {"eventId": inference},
                        "eventVersion": "0",
                    }
                )
        connection.close()
        config = self.configs[WATCHED]
        bucket = config.bucket_name("monitoring")
        uploaded = self._upload_capture(hour)
        others = uploaded - len(rows) + failed
        besides = f" (and {others} others it answered since: smoke tests, traffic during a switch)" if others else ""
        labels_key = f"{config.ground_truth_prefix}/{hour:%Y/%m/%d/%H}/labels-{label}.jsonl"
        self.c["s3"].put_object(
            Bucket=bucket, Key=labels_key, Body="".join(json.dumps(t) + "\n" for t in truth).encode()
        )
        self.timeline(
            "traffic",
            f"{label}: {len(rows)} requests to prod ({failed} failed), captured{besides} and filed under "
            f"{hour:%Y-%m-%d %H}:00 (simulated hour), {len(truth)} labelled",
        )

    def file_capture(self, hour: datetime) -> int:
        """File what prod captured since the last time under ``hour`` (as SageMaker files by hour)."""
        return self._upload_capture(hour)

    def _upload_capture(self, hour: datetime) -> int:
        """The capture records written since the last upload, to S3 under the simulated ``hour``."""
        config = self.configs[WATCHED]
        root = self.work / "capture" / config.endpoint_name
        # The server writes a record just after its answer: wait until the files stop growing.
        sizes: dict[Path, int] = {}
        while True:
            now = {p: p.stat().st_size for p in root.rglob("*.jsonl")}
            if now == sizes:
                break
            sizes = now
            time.sleep(0.3)
        offsets = getattr(self, "_offsets", {})
        self._offsets = offsets
        records = 0
        for path in sorted(root.rglob("*.jsonl")):
            data = path.read_bytes()
            new = data[offsets.get(path, 0) :]
            offsets[path] = len(data)
            if not new:
                continue
            records += new.count(b"\n")
            key = (
                f"{config.capture_prefix}/{config.endpoint_name}/primary/{hour:%Y/%m/%d/%H}/"
                f"{hashlib.sha256(str(path).encode()).hexdigest()[:8]}-{len(data)}.jsonl"
            )
            self.c["s3"].put_object(Bucket=config.bucket_name("monitoring"), Key=key, Body=new)
        return records

    # --- monitoring ----------------------------------------------------------------------------

    def monitor(self, window: Window) -> None:
        """The platform engine's two checks of the window, as Scheduler, the launcher, SageMaker and the results
        function would run them; then the alarms, evaluated as CloudWatch would."""
        from monitoring_launcher.events import ScheduledRun
        from monitoring_launcher.events import Settings as LauncherSettings
        from monitoring_launcher.launcher import Launcher
        from monitoring_results.events import ProcessingJobStateChange
        from monitoring_results.events import Settings as ResultsSettings
        from monitoring_results.results import Results

        config = self.configs[WATCHED]
        template = self.assembly.template(WATCHED, "Endpoint")
        known = placeholders(template)
        for export in [e for e in known if "DataKey" in e]:
            known[export] = self.data_key
        launcher_env = self._function_environment(WATCHED, "Endpoint", f"{config.name_prefix}-monitoring-launcher")
        launcher = Launcher(
            LauncherSettings.model_validate(resolve(launcher_env, known)),
            s3=self.c["s3"],
            sagemaker=self.c["sagemaker"],
        )
        results_env = self._function_environment(WATCHED, "Endpoint", f"{config.name_prefix}-monitoring-results")
        results = Results(
            ResultsSettings.model_validate(resolve(results_env, known)),
            s3=self.c["s3"],
            cloudwatch=self.c["cloudwatch"],
        )
        monitoring = config.monitoring
        assert monitoring is not None
        checks = [("data-quality", window.hour + timedelta(hours=1, minutes=10))]
        if monitoring.model_quality:
            # Model quality judges the hour whose labels have arrived: ground_truth_delay_hours later.
            delay = timedelta(hours=monitoring.ground_truth_delay_hours)
            checks.append(("model-quality", window.hour + timedelta(hours=1, minutes=10) + delay))
        for check, scheduled in checks:
            run = ScheduledRun.model_validate(
                {"check": check, "scheduled_time": scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"), "schedule_arn": "local"}
            )
            launch = launcher.launch(run)
            if launch.action != "started":
                raise StepFailed(f"the {check} run of {window.label} did not start: {launch.reason}")
            job = self.c["sagemaker"].describe_processing_job(ProcessingJobName=launch.job_name)
            done = run_processing_job(self.c["s3"], job, self.work / "jobs" / launch.job_name)
            if done.returncode != 0:
                raise StepFailed(f"the {check} job of {window.label} failed: {done.stderr.strip()[-800:]}")
            state_change = job_state_change(job, config.account, REGION)
            outcome = results.on_job(ProcessingJobStateChange.model_validate(state_change))
            if outcome.action != "published":
                raise StepFailed(f"the {check} results of {window.label} were not published: {outcome.reason}")
            metrics = outcome.metrics
            if check == "data-quality":
                window.drift = {
                    k.removeprefix("feature_baseline_drift_"): v
                    for k, v in metrics.items()
                    if k.startswith("feature_baseline_drift_")
                }
                window.violations = int(metrics.get("baseline_drift_violations", 0))
            else:
                window.quality = {k: v for k, v in metrics.items() if k in ("rmse", "mae", "r2")}
            if check == "data-quality":
                largest = max(window.drift.items(), key=lambda item: item[1], default=("-", 0.0))
                drifting = f"largest drift {largest[0]} {largest[1]:.3f}" if largest[1] > 0 else "no feature drifts"
                summary = f"drift violations {window.violations}, {drifting}"
            else:
                summary = f"rmse {window.quality.get('rmse', float('nan')):.3f}"
            self.timeline("monitor", f"{window.label}: {check} job {launch.job_name} ran ml_code.monitor: {summary}")
        self.windows.append(window)

    def alarm(self, window: Window, kind: str) -> dict[str, Any] | None:
        """Evaluate the synthesized ``kind`` alarm on the window's datapoints; its state change event if ALARM."""
        config = self.configs[WATCHED]
        template = self.assembly.template(WATCHED, "Endpoint")
        _, alarm = only(template, "AWS::CloudWatch::Alarm", AlarmName=config.monitoring_alarm_name(kind))
        props = alarm["Properties"]
        (stat,) = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
        hour = window.hour + timedelta(hours=1)  # the run's hour stamps its datapoints
        if kind == "model-quality":
            hour += timedelta(hours=config.monitoring.ground_truth_delay_hours)  # type: ignore[union-attr]
        points = self.c["cloudwatch"].get_metric_statistics(
            Namespace=stat["Metric"]["Namespace"],
            MetricName=stat["Metric"]["MetricName"],
            Dimensions=stat["Metric"]["Dimensions"],
            StartTime=hour,
            EndTime=hour + timedelta(seconds=stat["Period"]),
            Period=stat["Period"],
            Statistics=[stat["Stat"]],
        )["Datapoints"]
        value = max((p[stat["Stat"]] for p in points), default=None)
        comparison = props["ComparisonOperator"]
        breached = (
            value is not None
            and {
                "GreaterThanOrEqualToThreshold": value >= props["Threshold"],
                "GreaterThanThreshold": value > props["Threshold"],
            }[comparison]
        )
        state = "ALARM" if breached else "OK"
        self.timeline(
            "alarm",
            f"{props['AlarmName']}: {stat['Metric']['MetricName']} {stat['Stat']} = {value} "
            f"({comparison} {props['Threshold']:g}): {state} (evaluated here: moto evaluates no alarm)",
        )
        if not breached:
            return None
        window.alarms.append(props["AlarmName"])
        self.c["cloudwatch"].put_metric_alarm(
            AlarmName=props["AlarmName"],
            MetricName=stat["Metric"]["MetricName"],
            Namespace=stat["Metric"]["Namespace"],
            Statistic=stat["Stat"],
            Period=stat["Period"],
            EvaluationPeriods=1,
            Threshold=props["Threshold"],
            ComparisonOperator=comparison,
        )
        self.c["cloudwatch"].set_alarm_state(
            AlarmName=props["AlarmName"], StateValue="ALARM", StateReason=f"Threshold Crossed: {value}"
        )
        known = self._known(template)
        current = self.stages[WATCHED].served().package_arn
        known |= {"ModelPackageArn": current}
        return alarm_state_change(
            props,
            description=resolve(props["AlarmDescription"], known),
            state="ALARM",
            reason=f"Threshold Crossed: 1 datapoint [{value}] >= {props['Threshold']}",
            account=config.account,  # the endpoint's account sends its alarms' state changes
            region=REGION,
        )

    # --- retrain -------------------------------------------------------------------------------

    def retrain(self, event: dict[str, Any]) -> Any:
        """The alarm's event to the function its synthesized rule targets: dev's retrain function."""
        from model_retrain.events import AlarmStateChange
        from model_retrain.events import Settings as RetrainSettings
        from model_retrain.retrain import Retrainer

        dev = self.configs[REGISTRY]
        template = self.assembly.template(REGISTRY, "Retrain")
        rules = matching_rules(template, event)
        if not rules:
            raise StepFailed(f"no rule of dev's retrain stack matches the alarm {event['detail']['alarmName']}")
        environment = self._function_environment(REGISTRY, "Retrain", dev.retrain_function_name)
        settings = RetrainSettings.model_validate({**environment, "TOPIC_ARN": self.topics["retrain"]})
        decision = Retrainer(
            settings, sagemaker=self.c["sagemaker"], dynamodb=self.c["dynamodb"], sns=self.c["sns"], s3=self.c["s3"]
        ).on_alarm(AlarmStateChange.model_validate(event))
        self.timeline(
            "retrain", f"matched rule {rules[0]}; retrain function: {decision.action}: {decision.reason[:160]}"
        )
        return decision

    def notifications(self) -> list[str]:
        """The subjects published to the deploy's and the retrain's topics so far."""
        out = []
        while messages := self.c["sqs"].receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                out.append(json.loads(message["Body"]).get("Subject", ""))
                self.c["sqs"].delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return out


class _Connection:
    """One keep-alive HTTP connection to a router, as a client library would hold it."""

    def __init__(self, port: int) -> None:
        import http.client

        self.port = port
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, body: bytes, inference: str) -> tuple[int, bytes]:
        import http.client

        for attempt in (1, 2):
            try:
                self.http.request(
                    "POST",
                    "/invocations",
                    body=body,
                    headers={
                        "Content-Type": "text/csv",
                        "Accept": "text/csv",
                        "X-Amzn-SageMaker-Inference-Id": inference,
                    },
                )
                response = self.http.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                # A connection the router closed is reopened, as clients do; a second failure is a failure.
                self.http.close()
                self.http = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt == 2:
                    return 0, b""
        return 0, b""

    def close(self) -> None:
        self.http.close()


class Load:
    """Requests sent to an endpoint in the background (e.g. during a blue/green switch), counted."""

    def __init__(self, port: int, rows: list[str], per_second: float = 100.0) -> None:
        self.port, self.rows, self.pause = port, rows, 1.0 / per_second
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        connection = _Connection(self.port)
        while not self._stop.is_set():
            status, _ = connection.post(self.rows[self.sent % len(self.rows)].encode(), f"switch-{self.sent}")
            self.sent += 1
            self.failed += status != 200
            self._stop.wait(self.pause)
        connection.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)


def drifted(rows: list[list[str]], header: list[str], seed: int = 7) -> list[list[str]]:
    """Traffic that drifted: every ``shell_weight`` 60% larger (a new scale at the weighing station), and a
    third of the rows' ``sex`` recorded as ``I``; the rings (the label) are what they were."""
    rng = random.Random(seed)
    weight, sex = header.index("shell_weight"), header.index("sex")
    out = []
    for row in rows:
        changed = list(row)
        changed[weight] = f"{float(row[weight]) * 1.6:.4f}"
        if rng.random() < 0.34:
            changed[sex] = "I"
        out.append(changed)
    return out


def sample(seed: int) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(SAMPLE.read_text().splitlines()))
    random.Random(seed).shuffle(rows)  # the file is ordered; traffic is not
    return header, rows


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path
