"""`python -m tools.audit` end to end on a small assembly: real scanners, a stale acknowledgment, a baseline."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.audit.conftest import resource, write_assembly
from tools.audit.__main__ import main

NAG = "AwsSolutions::AwsSolutions"


def test_given_a_stale_acknowledgment_and_a_baseline_when_the_cli_runs_then_it_reports_both_and_exits_1(
    tmp_path: Path,
) -> None:
    cdk_out = tmp_path / "cdk.out"
    bucket = resource(
        "AWS::S3::Bucket",
        "dev/Base/Bucket/Resource",
        cdk_nag={"rules_to_suppress": [{"id": f"{NAG}-S10", "reason": "kept from an old finding"}]},
    )
    write_assembly(cdk_out, {"Base": {"Bucket": bucket}})
    report = {"pluginReports": [{"pluginName": "AwsSolutions", "violations": [], "suppressedViolations": []}]}
    (cdk_out / "validation-report.json").write_text(json.dumps(report), encoding="utf-8")
    baseline = tmp_path / "old"
    (baseline / "dev").mkdir(parents=True)
    (baseline / "dev" / "audit.json").write_text(
        json.dumps(
            {
                "commit": "abc",
                "cost_total": 3.0,
                "resources": {"Base/Queue": {"type": "AWS::SQS::Queue", "path": "dev/Base/Queue/Resource"}},
            }
        ),
        encoding="utf-8",
    )

    code = main(["--cdk-out", str(cdk_out), "--output", str(tmp_path / "out"), "--baseline", str(baseline)])

    assert code == 1
    out = tmp_path / "out" / "dev"
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "findings.sarif", "index.html", "report.md"]
    text = (out / "report.md").read_text(encoding="utf-8")
    assert f"Stale cdk-nag acknowledgment: {NAG}-S10 on dev/Base/Bucket/Resource" in text
    changes = text.split("## 9. What changed", 1)[1]
    assert "| ⚠ added | `Base/Bucket` |" in changes
    assert "| removed | `Base/Queue` |" in changes
    assert "3.00 before, 0.00 now (-3.00 USD per month)" in changes
    # checkov ran for real on the bucket: its failed checks are findings, and they are in the SARIF log.
    sarif = json.loads((out / "findings.sarif").read_text(encoding="utf-8"))
    checkov = next(run for run in sarif["runs"] if run["tool"]["driver"]["name"] == "checkov")
    assert "CKV_AWS_18" in {r["ruleId"] for r in checkov["results"]}


def test_given_no_assembly_when_the_cli_runs_then_it_names_what_to_run(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["--cdk-out", str(tmp_path / "missing"), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "run `make synth` first" in capsys.readouterr().err
