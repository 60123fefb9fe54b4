"""The environment commands, through the pinned CLI, offline.

Every stack sits inside its environment's Stage, so the CLI needs the stage selector
('<env>/*'): `cdk deploy --all` finds no stack. These tests run the selectors the README
and the Makefile use through `cdk ls`, over an assembly of four environments (the shipped
three and a qa made from its file alone), and check that each selects exactly its own
stacks. `make diff/deploy/destroy` must fail clearly without credentials, never report
"0 differences".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"
ENVIRONMENTS = ("dev", "staging", "prod", "qa")
STACKS = ("Foundation", "Studio", "ModelBuild", "Endpoint")
# Environments whose registry deploys (a deploy section) also hold the deploy; dev's feeds the monitored
# staging and prod endpoints, so dev also holds their retrain function.
DEPLOYING = {"dev", "qa"}
RETRAINING = {"dev"}


def stacks_of(environment: str) -> list[str]:
    extra = [*(["Deploy"] if environment in DEPLOYING else []), *(["Retrain"] if environment in RETRAINING else [])]
    return [f"{environment}/{stack}" for stack in (*STACKS, *extra)]


OFFLINE = {
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}


def _environment_without_credentials(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    missing = str(home / "missing")
    return {
        **env,
        **OFFLINE,
        "HOME": str(home),
        "AWS_CONFIG_FILE": missing,
        "AWS_SHARED_CREDENTIALS_FILE": missing,
    }


def _run(args: list[str], home: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env=_environment_without_credentials(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def four_environments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped three and a fourth, qa, added as nothing but config/qa.yaml."""
    folder = tmp_path_factory.mktemp("config")
    for name in ("dev", "staging", "prod"):
        (folder / f"{name}.yaml").write_text((ROOT / "config" / f"{name}.yaml").read_text())
    qa = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())
    # What the README's "Adding an environment" says to change in the copy of dev.yaml.
    qa.update(name="qa", name_prefix="mlops-qa")
    qa["networking"]["cidr"] = "10.50.0.0/16"
    qa["model_build"]["source"]["repository"] = "mlops-qa-model-build"
    qa["deploy"] = {"stages": ["qa"]}  # dev's registry already feeds dev, staging and prod
    (folder / "qa.yaml").write_text(yaml.safe_dump(qa))
    return folder


@pytest.fixture(scope="module")
def assembly(four_environments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four environments synthesized once through the pinned CLI."""
    out = tmp_path_factory.mktemp("cdk-out")
    home = tmp_path_factory.mktemp("home")
    result = _run(
        [str(CDK), "synth", "--no-notices", "--quiet", "-c", f"config_dir={four_environments}", "--output", str(out)],
        home,
    )
    assert result.returncode == 0, result.stderr
    return out


def _listed(stdout: str) -> list[str]:
    # `cdk ls` prints "<display name> (<stack name>)" per stack; make may print its own lines around it.
    return [line.split(" ")[0] for line in stdout.splitlines() if re.match(r"^[\w-]+/[\w-]+ \(", line)]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_stage_selector_lists_exactly_that_environments_stacks(assembly: Path, tmp_path: Path, environment) -> None:
    result = _run([str(CDK), "ls", "--no-notices", "--app", str(assembly), f"{environment}/*"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert _listed(result.stdout) == stacks_of(environment)


def test_the_assembly_holds_all_four_environments(assembly: Path) -> None:
    # What the selectors above chose from: every environment, so "no other" is a real check.
    manifest = json.loads((assembly / "manifest.json").read_text())
    stages = sorted(name for name, a in manifest["artifacts"].items() if a["type"] == "cdk:cloud-assembly")
    assert stages == sorted(f"assembly-{name}" for name in ENVIRONMENTS)


def test_deploy_all_finds_no_stack_which_is_why_selectors_are_needed(assembly: Path, tmp_path: Path) -> None:
    # The README's old `cdk deploy --all -c env=dev`: --all sees only top-level stacks, and there are none.
    # It fails while selecting, before any AWS call, so it runs offline.
    result = _run([str(CDK), "deploy", "--all", "--no-notices", "--app", str(assembly)], tmp_path, timeout=120)
    assert result.returncode != 0
    assert "No stack found in the main cloud assembly" in result.stdout + result.stderr


def test_make_ls_lists_a_fourth_environment_from_its_config_dir(four_environments: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(["make", "ls", "ENV=qa", f"CONFIG_DIR={four_environments}", f"CDK_ARGS=--output {out}"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--no-notices" in result.stdout
    assert _listed(result.stdout) == stacks_of("qa")


def test_make_ls_of_an_environment_without_a_file_names_it(tmp_path: Path) -> None:
    result = _run(["make", "ls", "ENV=perf", f"CDK_ARGS=--output {tmp_path / 'out'}"], tmp_path)
    assert result.returncode != 0
    assert "error: -c env=perf: no environment 'perf'" in result.stderr


@pytest.mark.parametrize("command", ["diff", "deploy", "destroy"])
def test_commands_that_call_aws_fail_clearly_without_credentials(tmp_path: Path, command: str) -> None:
    result = _run(["make", command, "ENV=dev"], tmp_path, timeout=120)
    assert result.returncode != 0
    assert (
        f"error: make {command} ENV=dev needs AWS credentials (for account 111111111111 or one it trusts), "
        "and none work: Unable to locate credentials"
    ) in result.stderr
    assert "cdk" not in result.stdout  # the CLI never ran, so it never printed "0 differences"


@pytest.mark.parametrize("command", ["diff", "deploy", "destroy"])
def test_commands_that_call_aws_need_an_environment(tmp_path: Path, command: str) -> None:
    result = _run(["make", command], tmp_path)
    assert result.returncode != 0
    assert f"error: ENV is required, e.g. make {command} ENV=dev (one of: dev prod staging" in result.stderr
