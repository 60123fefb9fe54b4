"""CI's commands, run the way CI runs them: as synthesized (or as the sample workflow writes them),
in a fresh virtualenv holding only what those commands install, on a clean checkout.

``make install`` puts everything in ``.venv``; a stage that imports something it does not install
passes there and fails on the first push. Here each stage gets nothing but the Python it names
(3.11) and its own ``pip install`` lines. AWS calls go to a moto server on 127.0.0.1. The image
stage needs Docker and is not run (it only calls ``python -m pipelines.image_tag``, which uses the
standard library alone, checked below). moto reports every pipeline execution Succeeded at once,
so ``--wait`` here proves only that the runner installs, imports and talks to the API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import yaml

from pipelines.image_tag import image_tag
from tests.integration.conftest import ROOT, aws_client, publish_discovery, push_images

pytestmark = pytest.mark.slow
WORKFLOW = ROOT / "examples" / "github-actions" / "model-build.yml"


def _base_python() -> str:
    """The interpreter the project's venv was made from: a fresh venv must not see .venv's packages."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3.11") or sys.executable


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only what git would check out: tracked files and new ones it does not ignore (no .venv, no cdk.out)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    target = tmp_path_factory.mktemp("checkout")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


class FreshEnvironments:
    """One fresh venv per set of install commands, shared by the stages that install the same set."""

    def __init__(self, root: Path, checkout: Path) -> None:
        self.root, self.checkout, self.made = root, checkout, {}

    def environment(self, install: list[str]) -> dict[str, str]:
        """A venv after ``install`` ran in it; returns the process environment that uses it."""
        key = tuple(sorted(re.findall(r"-r (\S+)", " ".join(install))))
        if key not in self.made:
            venv = self.root / f"venv{len(self.made)}"
            subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
            env = _clean_env(venv)
            for command in install:
                _run(command, self.checkout, env, timeout=1200)
            self.made[key] = env
        return self.made[key]


def _clean_env(venv: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "PIP_INDEX_URL", "PIP_CACHE_DIR")}
    return {**keep, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(venv)}


def _run(command: str, cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"`{command}` failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, checkout: Path) -> Iterator[FreshEnvironments]:
    yield FreshEnvironments(tmp_path_factory.mktemp("venvs"), checkout)


def _buildspec(app, stage: str) -> dict:
    projects = {
        p["Properties"]["Name"]: p["Properties"]
        for p in app.templates["dev"]["ModelBuild"]["Resources"].values()
        if p["Type"] == "AWS::CodeBuild::Project"
    }
    spec: dict = json.loads(projects[f"mlops-dev-model-build-{stage}"]["Source"]["BuildSpec"])
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11"}
    assert sys.version_info[:2] == (3, 11)
    return spec


def _split(commands: list[str]) -> tuple[list[str], list[str]]:
    install = [c for c in commands if c.startswith("pip install")]
    return install, [c for c in commands if c not in install]


def _aws(moto_endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _publish_discovery(moto_endpoint: str, prefix: str, region: str, checkout: Path) -> None:
    """What the foundation and model-build stacks would have published, and the images the image stage pushes."""

    def client(service: str):  # type: ignore[no-untyped-def]
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    publish_discovery(client("ssm"), prefix, region)
    push_images(client("ecr"), prefix, image_tag(checkout))


def test_codebuild_unit_test_stage_passes_in_a_fresh_environment(single_account, fresh, checkout) -> None:
    install, commands = _split(_buildspec(single_account, "tests")["phases"]["build"]["commands"])
    env = fresh.environment(install)
    for command in commands:
        result = _run(command, checkout, {**env, "ENVIRONMENT": "dev", "NAME_PREFIX": "mlops-dev"})
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-500:]


def test_codebuild_train_stage_upserts_and_starts_the_pipeline_from_a_fresh_environment(
    single_account, fresh, checkout, moto_endpoint
) -> None:
    install, commands = _split(_buildspec(single_account, "train")["phases"]["build"]["commands"])
    env = fresh.environment(install)
    _publish_discovery(moto_endpoint, "mlops-dev", "eu-west-1", checkout)
    for command in commands:
        result = _run(command, checkout, {**env, **_aws(moto_endpoint), "ENVIRONMENT": "dev"})
    assert "pipeline mlops-dev-model-build" in result.stdout
    sagemaker = aws_client("sagemaker", moto_endpoint)
    definition = sagemaker.describe_pipeline(PipelineName="mlops-dev-model-build")["PipelineDefinition"]
    assert "{{ssm" not in definition and "published-artifacts-mlops-dev" in definition
    assert "/mlops-dev/tr@sha256:" in definition  # the images pinned by digest


def test_the_image_tag_needs_only_the_standard_library(checkout, tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    result = _run("python3 -m pipelines.image_tag", checkout, _clean_env(venv))
    assert re.fullmatch(r"sha-[0-9a-f]{16}\n", result.stdout)


def _workflow_steps() -> dict[str, dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return {step.get("name", step.get("uses")): step for step in workflow["jobs"]["build"]["steps"]}


def test_github_workflow_runs_its_own_steps_in_a_fresh_environment(fresh, checkout, moto_endpoint, tmp_path) -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = _workflow_steps()
    base = {**workflow["env"]}
    # Unit tests: the step's own install and test lines.
    lines = [line for line in steps["Unit tests"]["run"].splitlines() if line.strip()]
    install, commands = _split(lines)
    env = {**fresh.environment(install), **base}
    for command in commands:
        _run(command, checkout, env)
    # Environment: what the later steps read from $GITHUB_ENV comes from the config file.
    github_env = tmp_path / "github_env"
    _run(steps["Environment"]["run"], checkout, {**env, "GITHUB_ENV": str(github_env)})
    values = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert values["ROLE_ARN"].endswith(f":role/{values['NAME_PREFIX']}-github-model-build")
    # The image step pushes to the registry the config names (not one the workflow derives).
    assert values["REGISTRY"] == f"{values['AWS_ACCOUNT_ID']}.dkr.ecr.{values['AWS_REGION']}.amazonaws.com"
    assert "$REGISTRY/$repo:$TAG" in steps["Build and push the images when their sources changed"]["run"]
    # Upsert and run: the pipeline requirements are a subset of what the unit-test step installed.
    _publish_discovery(moto_endpoint, values["NAME_PREFIX"], values["AWS_REGION"], checkout)
    result = _run(
        steps["Upsert and run the SageMaker Pipeline"]["run"], checkout, {**env, **values, **_aws(moto_endpoint)}
    )
    assert f"pipeline {values['NAME_PREFIX']}-model-build" in result.stdout
