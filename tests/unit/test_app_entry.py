"""The CDK entry point fails before synth, naming file, field and problem, when a config is bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


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
