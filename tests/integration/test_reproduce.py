"""Rebuilding a model from its record: `local_run --reproduce` for real, `pipelines.reproduce` against moto.

The local runs are real (`python -m ml_code.local_run` in a fresh process, a rerun with one CPU
kept busy by another process). `pipelines.reproduce` is tested through boto3 against a moto
server: its refusals, the parameters it starts the pipeline with, and its comparison of two
registered versions whose evaluation.json and predictions.csv are the real local runs' files.
Not exercised offline: a rebuild running in SageMaker (moto reports the execution Succeeded at
once and registers nothing), JsonGet filling the metadata properties, the Std:Join of numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from ml_code.lineage import input_identity
from pipelines import reproduce
from pipelines.definition import RECORDED_PARAMETERS
from pipelines.image_tag import image_tag
from pipelines.settings import settings_for
from stacks.config import load_config
from tests.integration.conftest import ROOT, SAMPLE, aws_client, publish_discovery, push_images

REGISTRY = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"


def _local_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml_code.local_run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run, its rerun with a CPU kept busy, and a rerun after the data changed."""
    root = tmp_path_factory.mktemp("reproduce")
    data = root / "abalone.csv"
    shutil.copyfile(SAMPLE, data)
    original = _local_run(
        "--data", str(data), "--target", "rings", "--problem-type", "regression", "--output", str(root / "a"),
        "--max-trials", "1", "--time-budget", "600",
    )  # fmt: skip
    assert original.returncode == 0, original.stderr
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        rerun = _local_run("--reproduce", str(root / "a"), "--output", str(root / "b"))
    finally:
        busy.kill()
        busy.wait()
    shutil.copyfile(data, root / "original.csv")
    lines = data.read_text().splitlines()
    # Forty targets change: the data's identity and the model both change.
    changed = [
        *lines[:1],
        *(line.rsplit(",", 1)[0] + ",3" if 0 < i <= 40 else line for i, line in enumerate(lines[1:], 1)),
    ]
    data.write_text("\n".join(changed) + "\n")
    after_change = _local_run("--reproduce", str(root / "a"), "--output", str(root / "c"))
    return {"root": root, "rerun": rerun, "after_change": after_change}


# --- local_run --reproduce --------------------------------------------------------------------------


def test_a_run_records_what_a_rerun_needs(runs) -> None:
    a = runs["root"] / "a"
    recorded = json.loads((a / "run.json").read_text())
    # The identity names each file: the original bytes, under the name the run read them by.
    original = hashlib.sha256((runs["root"] / "original.csv").read_bytes()).hexdigest()
    assert recorded["input_sha256"] == input_identity([("abalone.csv", original)])
    assert (recorded["max_trials"], recorded["seed"], recorded["time_budget_seconds"]) == (1, 42, 600.0)
    header = (a / "predictions.csv").read_text().splitlines()[0]
    assert header == "prediction"


def test_a_rerun_with_a_busy_cpu_is_the_same_model(runs) -> None:
    rerun = runs["rerun"]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "same model: the same winner, test predictions and metrics (within 1e-9)" in rerun.stdout
    assert "is not what" not in rerun.stdout and "TIME BUDGET" not in rerun.stdout
    # (Not byte for byte: the forest averages its trees on two threads in the order they finish,
    # which moves the 15th digit of some predictions. That is what the 1e-9 tolerance is for.)


def test_a_rerun_after_the_data_changed_says_so_and_is_a_different_model(runs) -> None:
    after = runs["after_change"]
    assert after.returncode == 3, after.stdout + after.stderr
    assert "is not what" in after.stdout and "was built from" in after.stdout
    assert "DIFFERENT model" in after.stdout
    assert "predictions:" in after.stdout and "test rows differ" in after.stdout
    assert "note: the input data differs" in after.stdout


def test_reproduce_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    result = _local_run("--reproduce", str(tmp_path))
    assert result.returncode == 1 and "run.json not found" in result.stderr


# --- pipelines.reproduce against moto -----------------------------------------------------------------


@pytest.fixture
def aws(moto_endpoint):
    return {s: aws_client(s, moto_endpoint) for s in ("sagemaker", "ssm", "ecr", "s3")}


@pytest.fixture
def git_checkout(tmp_path: Path) -> tuple[Path, str]:
    """A git checkout with one commit: where the recorded commit is checked (the code itself runs from ROOT)."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    (repo / "README.md").write_text("x\n")

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    return repo, git("rev-parse", "HEAD")


def _environment(aws: dict, prefix: str, runs: dict) -> tuple:
    """Discovery, images, the data in S3 and a registered version recording them; returns (config, record, arn)."""
    config = load_config(ROOT / "config" / "dev.yaml").model_copy(update={"name_prefix": prefix})
    tag = image_tag()
    publish_discovery(aws["ssm"], prefix)
    digests = push_images(aws["ecr"], prefix, tag)
    data_bucket, artifacts = f"published-data-{prefix}", f"published-artifacts-{prefix}"
    for bucket in (data_bucket, artifacts):
        with contextlib.suppress(ClientError):  # one moto server per session: a parametrized test comes back
            aws["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    aws["s3"].put_object(
        Bucket=data_bucket, Key="abalone/abalone.csv", Body=(runs["root"] / "original.csv").read_bytes()
    )
    # A file the pandas step would not read (not directly in the prefix's folder): it must not count.
    aws["s3"].put_object(Bucket=data_bucket, Key="abalone/old/abalone.csv", Body=b"a,b\n1,2\n")
    with contextlib.suppress(ClientError):
        aws["sagemaker"].create_model_package_group(ModelPackageGroupName=config.model_package_group_name)
    record = {
        "input_data_uri": f"s3://{data_bucket}/abalone/abalone.csv",
        "processing_instance_type": "ml.m5.large",
        "processing_instance_count": "1",
        "training_instance_type": "ml.m5.xlarge",
        "training_instance_count": "1",
        "metric_threshold": "2.9",
        "source_commit": "0" * 40,
        "training_image": f"{REGISTRY}/{prefix}/tr@{digests[f'{prefix}/tr']}",
        "inference_image": f"{REGISTRY}/{prefix}/in@{digests[f'{prefix}/in']}",
        "config_sha256": settings_for(config, tag).config_sha256,
        "image_tag": tag,
        "data_sha256": json.loads((runs["root"] / "a" / "run.json").read_text())["input_sha256"],
        "pipeline_execution_arn": f"arn:aws:sagemaker:eu-west-1:123456789012:pipeline/{prefix}-model-build/execution/a",
        "target": "rings",
    }
    arn = _register(aws, config, record, artifacts, runs["root"] / "a", "a")
    return config, record, arn


def _register(aws: dict, config, record: dict, bucket: str, run_dir: Path, name: str) -> str:
    for file in ("evaluation.json", "predictions.csv"):
        aws["s3"].put_object(Bucket=bucket, Key=f"{name}/evaluation/{file}", Body=(run_dir / file).read_bytes())
    return aws["sagemaker"].create_model_package(
        ModelPackageGroupName=config.model_package_group_name,
        InferenceSpecification={
            "Containers": [{"Image": record["inference_image"], "ModelDataUrl": f"s3://{bucket}/{name}/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelMetrics={
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://{bucket}/{name}/evaluation/evaluation.json",
                }
            }
        },
        CustomerMetadataProperties=record,
        ModelApprovalStatus="PendingManualApproval",
    )["ModelPackageArn"]


def _start(aws: dict, config, arn: str, repo: Path, **kwargs):
    return reproduce.start_rebuild(
        config, arn, sagemaker=aws["sagemaker"], ssm=aws["ssm"], ecr=aws["ecr"], s3=aws["s3"], repo=repo,
        log=lambda _: None, clock=lambda: 1700000000.0, **kwargs,
    )  # fmt: skip


def test_a_rebuild_starts_the_pipeline_with_the_recorded_parameters(aws, runs, git_checkout) -> None:
    repo, head = git_checkout
    config, record, _ = _environment(aws, "repro-a", runs)
    arn = _register(
        aws, config, {**record, "source_commit": head}, "published-artifacts-repro-a", runs["root"] / "a", "h"
    )
    rebuild = _start(aws, config, arn, repo)
    started = aws["sagemaker"].list_pipeline_parameters_for_execution(PipelineExecutionArn=rebuild.execution_arn)
    values = {p["Name"]: p["Value"] for p in started["PipelineParameters"]}
    expected = {name: record[key] for key, name in RECORDED_PARAMETERS.items()}
    assert values == {**expected, "SourceCommit": head, "RebuildId": "reproduce-1700000000"}
    # The images run by the digests recorded, and the pipeline's definition is this checkout's.
    described = aws["sagemaker"].describe_pipeline(PipelineName="repro-a-model-build")
    defaults = {p["Name"]: p.get("DefaultValue") for p in json.loads(described["PipelineDefinition"])["Parameters"]}
    assert defaults["TrainingImage"] == record["training_image"]
    # moto reports the execution Succeeded at once and registers nothing: the rebuild's version is not found.
    with pytest.raises(reproduce.RunError, match="registered no model version in repro-a-models"):
        reproduce.version_of_execution(aws["sagemaker"], config.model_package_group_name, rebuild.execution_arn)


def test_a_pipeline_running_another_definition_is_kept_unless_asked(aws, runs, git_checkout) -> None:
    repo, head = git_checkout
    config, record, _ = _environment(aws, "repro-b", runs)
    arn = _register(
        aws, config, {**record, "source_commit": head}, "published-artifacts-repro-b", runs["root"] / "a", "h"
    )
    aws["sagemaker"].create_pipeline(
        PipelineName="repro-b-model-build",
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": [], "Parameters": []}),
        RoleArn="arn:aws:iam::111111111111:role/published-repro-b",
    )
    with pytest.raises(reproduce.RunError, match="runs another definition than this checkout builds"):
        _start(aws, config, arn, repo)
    assert _start(aws, config, arn, repo, upsert=True).execution_arn


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source_commit": "unknown"}, "was not built by CI from a commit"),
        ({"source_commit": "1" * 40}, "the checkout is at .*, the version was built from 1111"),
        ({"config_sha256": "f" * 64}, "the config file is not the one it was built with"),
        ({"image_tag": "sha-0000000000000000"}, "this checkout's image tag is"),
        ({"training_image": f"{REGISTRY}/repro-c/tr@sha256:{'0' * 64}"}, "the recorded training_image cannot be used"),
        ({"data_sha256": "e" * 64}, r"the 1 input object\(s\) under .* the data changed"),
        ({"data_sha256": "unknown"}, "does not know the identity of its input"),
        ({"config_sha256": ""}, "does not record config_sha256"),
    ],
)
def test_a_rebuild_is_refused_when_what_it_was_built_from_is_not_at_hand(
    aws, runs, git_checkout, change: dict, message: str
) -> None:
    repo, head = git_checkout
    config, record, _ = _environment(aws, "repro-c", runs)
    changed = {k: v for k, v in {**record, "source_commit": head, **change}.items() if v}
    arn = _register(aws, config, changed, "published-artifacts-repro-c", runs["root"] / "a", "h")
    with pytest.raises(reproduce.Refused, match=message):
        _start(aws, config, arn, repo)
    assert "repro-c-model-build" not in [
        p["PipelineName"] for p in aws["sagemaker"].list_pipelines()["PipelineSummaries"]
    ]


def test_a_checkout_with_changed_files_or_another_environment_is_refused(aws, runs, git_checkout) -> None:
    repo, head = git_checkout
    config, record, _ = _environment(aws, "repro-d", runs)
    arn = _register(
        aws, config, {**record, "source_commit": head}, "published-artifacts-repro-d", runs["root"] / "a", "h"
    )
    (repo / "README.md").write_text("changed\n")
    with pytest.raises(reproduce.Refused, match=r"changes to tracked files \(README.md\)"):
        _start(aws, config, arn, repo)
    other = config.model_copy(update={"name_prefix": "repro-x"})
    with pytest.raises(reproduce.Refused, match="belongs to repro-d-models, not to dev's repro-x-models"):
        _start(aws, other, arn, repo)


def test_changed_data_in_s3_is_refused(aws, runs, git_checkout) -> None:
    repo, head = git_checkout
    config, record, _ = _environment(aws, "repro-e", runs)
    arn = _register(
        aws, config, {**record, "source_commit": head}, "published-artifacts-repro-e", runs["root"] / "a", "h"
    )
    aws["s3"].put_object(
        Bucket="published-data-repro-e", Key="abalone/abalone.csv", Body=(runs["root"] / "abalone.csv").read_bytes()
    )
    with pytest.raises(reproduce.Refused, match="the data changed"):
        _start(aws, config, arn, repo)


def test_two_registered_versions_are_compared_on_their_real_artifacts(aws, runs) -> None:
    config, record, original = _environment(aws, "repro-f", runs)
    bucket = "published-artifacts-repro-f"
    same = _register(aws, config, record, bucket, runs["root"] / "b", "b")
    comparison = reproduce.compare_versions(aws["sagemaker"], aws["s3"], original, same)
    assert comparison.same, comparison.report()
    changed_record = {
        **record,
        "data_sha256": json.loads((runs["root"] / "c" / "run.json").read_text())["input_sha256"],
    }
    different = _register(aws, config, changed_record, bucket, runs["root"] / "c", "c")
    comparison = reproduce.compare_versions(aws["sagemaker"], aws["s3"], original, different)
    assert not comparison.same
    assert any(d.startswith("data_sha256:") for d in comparison.differences)
    assert any("test rows differ" in d for d in comparison.differences)
    assert any(d.startswith("regression_metrics.") for d in comparison.differences)


def test_the_command_exits_1_naming_the_refusal(aws, runs, moto_endpoint, monkeypatch, capsys) -> None:
    _, _, arn = _environment(aws, "mlops-dev", runs)  # the shipped dev config's own prefix
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    code = reproduce.main(["--config", str(ROOT / "config" / "dev.yaml"), "--model-package-arn", arn, "--wait"])
    assert code == 1
    assert "the version was built from 0000000000000000000000000000000000000000" in capsys.readouterr().err
