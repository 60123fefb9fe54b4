"""The SageMaker Pipeline definition, built offline by the sagemaker SDK, checked step by step."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipelines.definition import RECORDED_FROM_EVALUATION, RECORDED_PARAMETERS
from pipelines.run import definition_json, write_definitions
from stacks.config import load_config
from tests.unit.pipelines.offline import no_network

ROOT = Path(__file__).resolve().parents[3]
TAG = "sha-0123456789abcdef"
JOB_STEPS = ("Preprocess", "Train", "Evaluate", "DataQualityBaseline")


@pytest.fixture(scope="module")
def dev() -> dict:
    # Any socket opened while the SDK builds the definition fails the test: it must be offline.
    with no_network():
        return definition_json(load_config(ROOT / "config" / "dev.yaml"), TAG)


def _steps(definition: dict) -> dict[str, dict]:
    steps = {s["Name"]: s for s in definition["Steps"]}
    for condition in [s for s in definition["Steps"] if s["Type"] == "Condition"]:
        for branch in ("IfSteps", "ElseSteps"):
            steps.update({s["Name"]: s for s in condition["Arguments"][branch]})
    return steps


def test_step_graph(dev: dict) -> None:
    top = [(s["Name"], s["Type"]) for s in dev["Steps"]]
    assert top == [
        ("Preprocess", "Processing"),
        ("Train", "Training"),
        ("Evaluate", "Processing"),
        ("DataQualityBaseline", "Processing"),
        ("QualityGate", "Condition"),
    ]
    gate = _steps(dev)["QualityGate"]["Arguments"]
    assert [s["Type"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("QualityGateFailed", "Fail")]
    assert _steps(dev)["QualityGate"]["DependsOn"] == ["DataQualityBaseline"]
    text = json.dumps(_steps(dev)["Train"])
    assert "Steps.Preprocess.ProcessingOutputConfig.Outputs['train']" in text
    assert "Steps.Preprocess.ProcessingOutputConfig.Outputs['validation']" in text
    evaluate = json.dumps(_steps(dev)["Evaluate"])
    assert "Steps.Train.ModelArtifacts.S3ModelArtifacts" in evaluate
    assert "Outputs['test']" in evaluate
    # The baseline predicts on the training data with the trained model (output column first).
    inputs = {i["InputName"]: i["S3Input"] for i in _steps(dev)["DataQualityBaseline"]["Arguments"]["ProcessingInputs"]}
    assert {i["LocalPath"] for i in inputs.values()} == {"/opt/ml/processing/train", "/opt/ml/processing/model"}
    assert {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"} in [i["S3Uri"] for i in inputs.values()]


def test_parameters_and_their_defaults_come_from_config(dev: dict) -> None:
    params = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in dev["Parameters"]}
    assert params == {
        "InputDataUri": ("String", "s3://{{ssm:/mlops-dev/foundation/s3/data-bucket}}/abalone/abalone.csv"),
        "ProcessingInstanceType": ("String", "ml.m5.large"),
        "ProcessingInstanceCount": ("Integer", 1),
        "TrainingInstanceType": ("String", "ml.m5.large"),
        "TrainingInstanceCount": ("Integer", 1),
        "MetricThreshold": ("Float", 3.0),
        "SourceCommit": ("String", "unknown"),
        "TrainingImage": ("String", TRAINING_IMAGE),
        "InferenceImage": ("String", INFERENCE_IMAGE),
        "RebuildId": ("String", "none"),
    }
    steps = _steps(dev)
    for name in ("Preprocess", "Evaluate", "DataQualityBaseline"):
        cluster = steps[name]["Arguments"]["ProcessingResources"]["ClusterConfig"]
        assert cluster["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}
        # The pandas scripts do not split their work: a second instance would repeat it.
        assert cluster["InstanceCount"] == 1, name
    resources = steps["Train"]["Arguments"]["ResourceConfig"]
    assert resources["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}


KMS = "{{ssm:/mlops-dev/foundation/kms/data-key-arn}}"
SUBNETS = ["{{ssm-list:/mlops-dev/foundation/network/private-subnet-ids}}"]
JOB_SG = ["{{ssm:/mlops-dev/model-build/job-security-group-id}}"]
ROLE = "{{ssm:/mlops-dev/model-build/pipeline-role-arn}}"
TRAINING_IMAGE = "{{ssm:/mlops-dev/foundation/ecr/training-repository-uri}}:" + TAG
INFERENCE_IMAGE = "{{ssm:/mlops-dev/foundation/ecr/inference-repository-uri}}:" + TAG


def test_every_job_is_encrypted_isolated_and_in_the_private_subnets(dev: dict) -> None:
    steps = _steps(dev)
    for name in ("Preprocess", "Evaluate", "DataQualityBaseline"):
        args = steps[name]["Arguments"]
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KMS
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KMS
        network = args["NetworkConfig"]
        assert network["EnableNetworkIsolation"] is True
        assert network["EnableInterContainerTrafficEncryption"] is True
        assert network["VpcConfig"] == {"Subnets": SUBNETS, "SecurityGroupIds": JOB_SG}
        assert args["RoleArn"] == ROLE
        assert args["AppSpecification"]["ImageUri"] == {"Get": "Parameters.TrainingImage"}
        assert args["Environment"] == {"MLOPS_REBUILD_ID": {"Get": "Parameters.RebuildId"}}
    train = steps["Train"]["Arguments"]
    assert train["ResourceConfig"]["VolumeKmsKeyId"] == KMS
    assert train["OutputDataConfig"]["KmsKeyId"] == KMS
    assert train["OutputDataConfig"]["S3OutputPath"].startswith(
        "s3://{{ssm:/mlops-dev/foundation/s3/artifacts-bucket}}/"
    )
    assert train["RoleArn"] == ROLE
    assert train["AlgorithmSpecification"]["TrainingImage"] == {"Get": "Parameters.TrainingImage"}
    # A new RebuildId changes every job's arguments, so a rebuild takes nothing from the step cache.
    assert train["Environment"] == {"MLOPS_REBUILD_ID": {"Get": "Parameters.RebuildId"}}
    assert train["VpcConfig"] == {"Subnets": SUBNETS, "SecurityGroupIds": JOB_SG}
    assert train["EnableNetworkIsolation"] is True
    assert train["EnableInterContainerTrafficEncryption"] is True
    assert train["HyperParameters"]["target"] == "rings"
    assert train["HyperParameters"]["problem_type"] == "regression"


def test_processing_entrypoints_run_the_ml_code_steps(dev: dict) -> None:
    steps = _steps(dev)
    entry = {
        n: steps[n]["Arguments"]["AppSpecification"]["ContainerEntrypoint"]
        for n in ("Preprocess", "Evaluate", "DataQualityBaseline")
    }
    assert entry["Preprocess"] == [
        "python3",
        "-m",
        "ml_code.preprocess",
        "--target",
        "rings",
        "--problem-type",
        "regression",
    ]
    assert entry["Evaluate"] == ["python3", "-m", "ml_code.evaluate"]
    assert entry["DataQualityBaseline"] == ["python3", "-m", "ml_code.baseline"]


def test_jobs_retry_throttling_and_capacity_errors_and_cache(dev: dict) -> None:
    for name in JOB_STEPS:
        step = _steps(dev)[name]
        kinds = {kind for policy in step["RetryPolicies"] for kind in policy["ExceptionType"]}
        assert {
            "Step.THROTTLING",
            "Step.SERVICE_FAULT",
            "SageMaker.CAPACITY_ERROR",
            "SageMaker.RESOURCE_LIMIT",
        } <= kinds, name
        assert step["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}, name


def test_gate_compares_test_rmse_with_the_threshold_and_fails_with_a_reason(dev: dict) -> None:
    (condition,) = _steps(dev)["QualityGate"]["Arguments"]["Conditions"]
    assert condition["Type"] == "LessThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "regression_metrics.rmse.value"
    assert condition["LeftValue"]["Std:JsonGet"]["PropertyFile"] == {
        "Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"
    }
    assert condition["RightValue"] == {"Get": "Parameters.MetricThreshold"}
    message = json.dumps(_steps(dev)["QualityGateFailed"]["Arguments"]["ErrorMessage"])
    assert "is not <= the threshold" in message and "Parameters.MetricThreshold" in message
    (report,) = _steps(dev)["Evaluate"]["PropertyFiles"]
    assert report == {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}


def test_registration_is_pending_approval_with_metrics_and_baselines(dev: dict) -> None:
    register = next(s for s in _steps(dev).values() if s["Type"] == "RegisterModel")["Arguments"]
    assert register["ModelPackageGroupName"] == "mlops-dev-models"
    # Not a parameter: no execution can register a version as Approved and skip the approver.
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    metrics = json.dumps(register["ModelMetrics"])
    assert "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation']" in metrics and "evaluation.json" in metrics
    assert "statistics.json" in metrics and "constraints.json" in metrics
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == {"Get": "Parameters.InferenceImage"}
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert register["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "application/json"]
    # The version records what it was built from.
    record = register["CustomerMetadataProperties"]
    # every parameter it ran with, as a string
    for key, name in RECORDED_PARAMETERS.items():
        assert record[key] == {"Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{name}"}]}}, key
    assert set(RECORDED_PARAMETERS.values()) == {p["Name"] for p in dev["Parameters"]} - {"RebuildId"}
    assert record["rebuild_id"] == {"Get": "Parameters.RebuildId"}
    # what the steps measured, from evaluation.json's lineage section (strings the registry accepts)
    for key, field in RECORDED_FROM_EVALUATION.items():
        assert record[key] == {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
                "Path": f"lineage.{field}",
            }
        }, key
    assert record["image_tag"] == TAG and record["seed"] == "42" and record["time_budget_seconds"] == "600"
    assert record["preprocess_image"] == {"Get": "Parameters.TrainingImage"}
    assert record["pipeline_execution_arn"] == {"Get": "Execution.PipelineExecutionArn"}
    config = load_config(ROOT / "config" / "dev.yaml")
    assert record["config_sha256"] == hashlib.sha256(config.model_dump_json().encode()).hexdigest()
    # what the deploy's smoke test reads: the target's name and the test split the preprocess step wrote
    assert record["target"] == "rings"
    assert record["test_data_uri"] == {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}


def test_the_record_fits_the_registrys_limits(dev: dict) -> None:
    # botocore's service model: CustomerMetadataMap holds at most 50 keys of at most 128 characters,
    # values of 1 to 256 characters, both of letters, separators, digits and _.:/=+-@ only.
    import gzip
    import re

    import botocore

    service = Path(botocore.__file__).parent / "data" / "sagemaker" / "2017-07-24" / "service-2.json.gz"
    model = json.loads(gzip.decompress(service.read_bytes()))
    shapes = model["shapes"]
    register = next(s for s in _steps(dev).values() if s["Type"] == "RegisterModel")["Arguments"]
    record = register["CustomerMetadataProperties"]
    assert len(record) <= shapes["CustomerMetadataMap"]["max"]
    allowed = re.compile(r"^[\w\s.:/=+\-@]*$")  # the model's \p{L}\p{Z}\p{N}_.:/=+-@, for ASCII text
    for key, value in record.items():
        assert 1 <= len(key) <= shapes["CustomerMetadataKey"]["max"] and allowed.match(key), key
        if isinstance(value, str):  # literal values; the rest are checked where they are produced
            assert 1 <= len(value) <= shapes["CustomerMetadataValue"]["max"] and allowed.match(value), key
    assert shapes["CustomerMetadataValue"]["max"] == 256


def test_classification_gates_on_auc_at_least_the_threshold(tmp_path: Path) -> None:
    config = load_config(ROOT / "config" / "dev.yaml")
    assert config.model_build is not None
    pipeline = config.model_build.pipeline.model_copy(update={"problem_type": "binary", "metric_threshold": 0.8})
    binary = config.model_copy(update={"model_build": config.model_build.model_copy(update={"pipeline": pipeline})})
    (condition,) = _steps(definition_json(binary, TAG))["QualityGate"]["Arguments"]["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "binary_classification_metrics.auc.value"


def test_definitions_for_every_environment_are_written_and_deterministic(tmp_path: Path) -> None:
    first = write_definitions(ROOT / "config", tmp_path / "a", TAG)
    second = write_definitions(ROOT / "config", tmp_path / "b", TAG)
    assert [p.name for p in first] == ["dev.json", "staging.json", "prod.json"]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    prod = json.loads((tmp_path / "a" / "prod.json").read_text())
    assert prod["Parameters"][5] == {"Name": "MetricThreshold", "Type": "Float", "DefaultValue": 2.8}


# --- the Spark path (the multi-account example's prod turns it on) ------------------------------------


@pytest.fixture(scope="module")
def spark_prod() -> dict:
    return definition_json(load_config(ROOT / "config" / "examples" / "multi-account" / "prod.yaml"), TAG)


def test_spark_preprocess_runs_the_spark_script_from_s3_on_several_instances(spark_prod: dict) -> None:
    args = _steps(spark_prod)["Preprocess"]["Arguments"]
    app = args["AppSpecification"]
    assert app["ImageUri"].endswith(".dkr.ecr.eu-central-1.amazonaws.com/sagemaker-spark-processing:3.5-cpu")
    assert app["ContainerEntrypoint"] == ["smspark-submit", "/opt/ml/processing/input/code/spark_preprocess.py"]
    (code,) = args["ProcessingInputs"]
    assert code["S3Input"]["S3Uri"] == (
        "s3://{{ssm:/mlops-prod/foundation/s3/artifacts-bucket}}/mlops-prod-model-build/code/"
        f"{TAG}/spark_preprocess.py"
    )
    assert app["ContainerArguments"][:2] == ["--input", {"Get": "Parameters.InputDataUri"}]
    cluster = args["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
    params = {p["Name"]: p.get("DefaultValue") for p in spark_prod["Parameters"]}
    assert params["ProcessingInstanceCount"] == 2
    # Spark reads and writes S3 itself: inside the VPC, encrypted, but not network-isolated.
    assert args["NetworkConfig"]["EnableNetworkIsolation"] is False
    assert args["NetworkConfig"]["VpcConfig"]["Subnets"] == [
        "{{ssm-list:/mlops-prod/foundation/network/private-subnet-ids}}"
    ]
    assert (
        args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"]
        == "{{ssm:/mlops-prod/foundation/kms/data-key-arn}}"
    )


def test_later_steps_read_the_splits_spark_wrote(spark_prod: dict) -> None:
    steps = _steps(spark_prod)
    assert steps["Train"]["DependsOn"] == ["Preprocess"]
    # The baseline reads the splits and the trained model: after Train, so after Preprocess too.
    assert "Steps.Train.ModelArtifacts" in json.dumps(steps["DataQualityBaseline"]["Arguments"])
    train_inputs = json.dumps(steps["Train"]["Arguments"]["InputDataConfig"])
    assert '"Execution.PipelineExecutionId"}, "Preprocess"]}}, "train"]' in train_inputs
    assert "Steps.Preprocess.ProcessingOutputConfig" not in train_inputs


@pytest.mark.parametrize("config", ["dev.yaml", "staging.yaml", "prod.yaml", "examples/multi-account/prod.yaml"])
def test_jobs_are_named_after_the_environment_so_its_role_may_run_them(config: str) -> None:
    definition = definition_json(load_config(ROOT / "config" / config), TAG)
    prefix = load_config(ROOT / "config" / config).build_pipeline_name
    names = [
        step["Arguments"].get("TrainingJobName") or step["Arguments"].get("ProcessingJobName")
        for step in definition["Steps"]
        if step["Type"] in ("Training", "Processing")
    ]
    assert len(names) == 4
    for name in names:
        # The prefix SageMaker keeps (use_custom_job_prefix), with room for the suffix it appends
        # within the 63 characters a job name may have.
        assert name.startswith(f"{prefix}-") and len(name) <= 51, name
