"""The images' entrypoints, run as processes with SageMaker's environment (Docker cannot build here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ml_code.serving.readiness import free_port, wait_for_ping
from tests.integration.conftest import ROOT

CONTAINERS = ROOT / "ml_code" / "containers"


def _image_env(**extra: str) -> dict[str, str]:
    # What the image sets: the venv's python first on PATH, the code on PYTHONPATH.
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def test_train_entrypoint_runs_a_training_job_against_opt_ml(trained_run, tmp_path: Path) -> None:
    splits = trained_run[0] / ".jobs" / "preprocess" / "output"
    ml = tmp_path / "opt" / "ml"
    for channel in ("train", "validation"):
        shutil.copytree(splits / channel, ml / "input" / "data" / channel)
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"target": "rings", "problem_type": "regression", "max_trials": "1", "families": "linear"})
    )
    # Only the root moves: channels are found under input/data/, as SageMaker mounts them.
    result = subprocess.run(
        [str(CONTAINERS / "bin" / "train")],
        env=_image_env(SM_ML_ROOT=str(ml)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (ml / "model" / "model.joblib").is_file()
    assert json.loads((ml / "output" / "data" / "leaderboard.json").read_text())["winner"]["family"] == "linear"


def test_train_entrypoint_fails_with_a_reason_sagemaker_shows(tmp_path: Path) -> None:
    ml = tmp_path / "opt" / "ml"
    (ml / "input" / "data" / "train").mkdir(parents=True)
    result = subprocess.run(
        [str(CONTAINERS / "bin" / "train")],
        env=_image_env(SM_ML_ROOT=str(ml)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "input channel 'validation' is missing" in (ml / "output" / "failure").read_text()


def test_serve_entrypoint_answers_ping_on_the_sagemaker_port_variable(trained_run) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(CONTAINERS / "bin" / "serve")],
        env=_image_env(
            SM_MODEL_DIR=str(trained_run[0] / "model"),
            SAGEMAKER_BIND_TO_PORT=str(port),
            SAGEMAKER_MODEL_SERVER_WORKERS="1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_ping(port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _stages(dockerfile: Path) -> list[list[str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


@pytest.mark.parametrize(("image", "command"), [("training", "train"), ("inference", "serve")])
def test_dockerfiles_are_pinned_multistage_and_run_as_root_as_sagemaker_expects(image: str, command: str) -> None:
    stages = _stages(CONTAINERS / image / "Dockerfile")
    assert len(stages) == 2, "a build stage and a slim final stage"
    for stage in stages:
        base = stage[0].split()[1]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    final = stages[-1]
    # SageMaker's container contract: the container runs as root (it mounts /opt/ml over the image).
    assert not [line for line in final if line.upper().startswith("USER ")]
    assert not any(re.search(r"\b(gcc|g\+\+|build-essential|make|apt-get install)\b", line) for line in final)
    assert any(f"/usr/local/bin/{command}" in line for line in final)
    assert any(line.upper().startswith("HEALTHCHECK") for line in final)
    if image == "inference":
        assert "EXPOSE 8080" in final


def test_every_dockerfile_skip_is_in_the_acknowledgment_table_with_its_reason() -> None:
    from stacks.compliance.acknowledgments import DOCKERFILE_ACKNOWLEDGMENTS

    root = CONTAINERS.parents[1]
    declared = {(a.dockerfile, a.check, a.reason) for a in DOCKERFILE_ACKNOWLEDGMENTS}
    found = set()
    for dockerfile in sorted(CONTAINERS.glob("*/Dockerfile")):
        for line in dockerfile.read_text().splitlines():
            if match := re.fullmatch(r"#\s*checkov:skip=(CKV\w+):(.*)", line.strip()):
                found.add((dockerfile.relative_to(root).as_posix(), match.group(1), match.group(2)))
    assert found == declared
