"""The CDK entry point fails before synth, naming file, field and problem, when a config is bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _synth(tmp_path: Path, context: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # What the CLI passes: cdk.json's feature flags, then -c values.
    full = {**json.loads((ROOT / "cdk.json").read_text())["context"], **context}
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(full), "CDK_OUTDIR": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_fourth_environment_synthesizes_from_its_file_alone(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())
    data.update(name="qa", name_prefix="mlops-qa")
    data["networking"]["cidr"] = "10.50.0.0/16"
    data["deploy"] = {"stages": ["qa"]}  # dev's lists staging and prod, which are not here
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(data))
    result = _synth(tmp_path, {"config_dir": str(tmp_path), "env": "qa"})
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [name for name, a in manifest["artifacts"].items() if a["type"] == "cdk:cloud-assembly"] == ["assembly-qa"]
    stage = json.loads((tmp_path / "out" / "assembly-qa" / "manifest.json").read_text())
    stacks = sorted(a["displayName"] for a in stage["artifacts"].values() if a["type"] == "aws:cloudformation:stack")
    assert stacks == ["qa/Deploy", "qa/Endpoint", "qa/Foundation", "qa/ModelBuild", "qa/Studio"]


def test_an_unsafe_environment_name_stops_synth_with_a_clear_message(tmp_path: Path) -> None:
    result = _synth(tmp_path, {"env": "../prod"})
    assert result.returncode == 2
    assert "error: -c env=../prod: not a valid environment name (2-16 lowercase letters" in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_config_stops_synth_with_a_clear_message(tmp_path: Path) -> None:
    for name in ("dev", "staging", "prod"):
        (tmp_path / f"{name}.yaml").write_text((ROOT / "config" / f"{name}.yaml").read_text())
    data = yaml.safe_load((tmp_path / "staging.yaml").read_text())
    data["networking"]["cidr"] = "10.0.0.0/8"
    (tmp_path / "staging.yaml").write_text(yaml.safe_dump(data))
    context = {"config_dir": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"error: {tmp_path}/staging.yaml: invalid configuration" in result.stderr
    assert "networking.cidr: Value error, VPC CIDR prefix must be between /16 and /24, got /8" in result.stderr
    assert not (tmp_path / "out" / "manifest.json").exists()
