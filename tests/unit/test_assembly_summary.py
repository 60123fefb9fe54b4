"""The demo's synth summary counts acknowledged findings as the cdk-nag packs report them."""

from __future__ import annotations

import json
from pathlib import Path

from tools.assembly_summary import acknowledged_findings


def _finding(*paths: str) -> dict:
    return {"ruleName": "AwsSolutions-IAM5", "violatingConstructs": [{"constructPath": p} for p in paths]}


def test_each_acknowledged_finding_counts_once_per_construct_under_its_stack(tmp_path: Path) -> None:
    report = {
        "pluginReports": [
            {
                "pluginName": "AwsSolutions",
                "violations": [],
                "suppressedViolations": [_finding("dev/Studio/A/Resource")],
            },
            {
                "pluginName": "HIPAA.Security",
                "violations": [],
                "suppressedViolations": [_finding("dev/Studio/B/Resource", "prod/Foundation/C/Resource")],
            },
        ]
    }
    (tmp_path / "validation-report.json").write_text(json.dumps(report))
    assert acknowledged_findings(tmp_path) == {"dev/Studio": 2, "prod/Foundation": 1}


def test_without_a_report_nothing_is_counted(tmp_path: Path) -> None:
    assert acknowledged_findings(tmp_path) == {}
