"""Two synths of the same commit, through the pinned CLI in separate processes, are byte-identical."""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"


def _diff(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b)
    out = [f"{a.name}: only in one: {name}" for name in cmp.left_only + cmp.right_only]
    out += [str(a / name) for name in cmp.diff_files]
    for sub in cmp.common_dirs:
        out += _diff(a / sub, b / sub)
    return out


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.slow
def test_two_cli_synths_are_byte_identical(tmp_path: Path) -> None:
    assert CDK.exists(), "run `make install` first: the pinned CDK CLI is missing"
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    outdirs = [tmp_path / "a", tmp_path / "b"]
    procs = [
        subprocess.Popen(
            [str(CDK), "synth", "--no-notices", "--quiet", "-o", str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outdirs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    a, b = outdirs
    assert [p.relative_to(a) for p in _files(a)] == [p.relative_to(b) for p in _files(b)]
    templates = [p for p in _files(a) if p.name.endswith(".template.json")]
    assert len(templates) >= 3
    assert _diff(a, b) == []
    for path in _files(a):
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path
