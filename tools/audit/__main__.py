"""``python -m tools.audit``: the auditor's report of every environment in a synthesized assembly.

    python -m tools.audit --cdk-out cdk.out --output build/audit [--baseline old/build/audit]

Writes ``<output>/<env>/index.html``, ``report.md``, ``findings.sarif`` and ``audit.json``
(the data a later ``--baseline`` run compares with). Exits 1 when an acknowledgment or skip is
stale, 2 when the input cannot be read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from tools.audit import nag_rules
from tools.audit.assembly import AssemblyError, Environment, load_assembly
from tools.audit.changes import changes_section
from tools.audit.compliance import (
    ComplianceResult,
    cfn_lint_ignores,
    compliance_section,
    evaluate,
    load_validation_report,
)
from tools.audit.cost import PriceTableError, cost_section, load_prices
from tools.audit.diagram import DiagramError, diagram_section
from tools.audit.document import Document, to_html, to_markdown
from tools.audit.encryption import encryption_section
from tools.audit.iam import iam_section
from tools.audit.inventory import Provenance, inventory_section, provenance_section
from tools.audit.network import network_section
from tools.audit.sarif import to_sarif
from tools.audit.scanners import ScannerError, ScanResults, run_scanners, run_scanners_cached

ROOT = Path(__file__).resolve().parents[2]


def _commit(root: Path) -> str:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + (" (with uncommitted changes)" if dirty else "")


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cdk_cli_version(root: Path) -> str:
    package = root / "node_modules" / "aws-cdk" / "package.json"
    if package.exists():
        return str(json.loads(package.read_text(encoding="utf-8")).get("version", "unknown"))
    return "not installed"


def declared_acknowledgments() -> list[tuple[str, str, str, str]]:
    """(stack, path, finding, reason) of the project's acknowledgment table, placeholders as written."""
    from stacks.compliance.acknowledgments import ACKNOWLEDGMENTS

    return [(a.stack, path, finding, a.reason) for a in ACKNOWLEDGMENTS for path in a.paths for finding in a.findings]


def build_environment(
    env: Environment,
    *,
    provenance: Provenance,
    report: dict[str, Any] | None,
    scans: ScanResults,
    declared: list[tuple[str, str, str, str]],
    output: Path,
    baseline: Path | None,
    root: Path,
) -> tuple[ComplianceResult, float]:
    """Write one environment's four files and return its compliance result and idle cost."""
    table = load_prices()
    sections = [provenance_section(env, provenance)]
    inventory, resources = inventory_section(env)
    sections += [inventory, diagram_section(env)]
    encryption, encryption_data = encryption_section(env)
    iam, permissions = iam_section(env)
    network, network_data = network_section(env)
    result = evaluate(env, report, scans, nag_rules.catalogue(), declared, cfn_lint_ignores(root / ".cfnlintrc.yaml"))
    compliance, findings = compliance_section(env, result, report is not None)
    cost, cost_lines, total = cost_section(env, table)
    sections += [encryption, iam, network, compliance, cost]
    data = {
        "environment": env.name,
        "commit": provenance.commit,
        "resources": resources,
        "permissions": permissions,
        "encryption": encryption_data,
        "network": network_data,
        "findings": findings,
        "cost": cost_lines,
        "cost_total": total,
    }
    if baseline is not None:
        sections.append(changes_section(env.name, data, baseline))
    failed = sum(1 for f in result.findings if f.state == "failed")
    doc = Document(
        title=f"Audit of {env.name}",
        subtitle=(
            f"{sum(len(s.resources) for s in env.stacks)} resources in {len(env.stacks)} stacks · idle "
            f"{total:.2f} USD/month · {failed} failed findings · {len(result.stale)} stale acknowledgments · "
            f"written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `make audit` from {provenance.commit}"
        ),
        sections=sections,
    )
    target = output / env.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "index.html").write_text(to_html(doc), encoding="utf-8")
    (target / "report.md").write_text(to_markdown(doc), encoding="utf-8")
    sarif = to_sarif(result.findings, provenance.tool_versions_by_tool(), root)
    (target / "findings.sarif").write_text(json.dumps(sarif, indent=1) + "\n", encoding="utf-8")
    (target / "audit.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return result, total


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.audit", description=__doc__.split("\n")[0] if __doc__ else ""
    )
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--output", type=Path, default=Path("build/audit"))
    parser.add_argument("--baseline", type=Path, default=None, help="an earlier build/audit to compare with")
    parser.add_argument("--scan-venv", type=Path, default=ROOT / ".venv-scan")
    parser.add_argument(
        "--no-cache", action="store_true", help="run checkov and cfn-lint even over unchanged templates"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        environments = load_assembly(args.cdk_out)
        load_prices()
        templates = [s.template_file for e in environments for s in e.stacks]
        if args.baseline is not None and not args.baseline.is_dir():
            raise AssemblyError(f"{args.baseline}: the baseline is not a directory (give an earlier build/audit)")
        if args.no_cache:
            scans = run_scanners(templates, ROOT, args.scan_venv)
        else:
            scans = run_scanners_cached(templates, ROOT, args.scan_venv, args.output / ".scan-cache")
    except (AssemblyError, PriceTableError, ScannerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    provenance = Provenance(
        commit=_commit(ROOT),
        tool_versions={
            "aws-cdk-lib": _package_version("aws-cdk-lib"),
            "CDK CLI (aws-cdk)": _cdk_cli_version(ROOT),
            "cdk-nag": nag_rules.version(),
            "checkov": scans.checkov_version,
            "cfn-lint": scans.cfn_lint_version,
        },
    )
    report = load_validation_report(args.cdk_out)
    declared = declared_acknowledgments()
    stale = 0
    for env in environments:
        try:
            result, total = build_environment(
                env,
                provenance=provenance,
                report=report,
                scans=scans,
                declared=declared,
                output=args.output,
                baseline=args.baseline,
                root=ROOT,
            )
        except DiagramError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        failed = sum(1 for f in result.findings if f.state == "failed")
        print(
            f"{env.name}: {args.output / env.name}/{{index.html,report.md,findings.sarif}}  "
            f"idle {total:.2f} USD/month, "
            f"{failed} failed, {sum(1 for f in result.findings if f.state == 'acknowledged')} acknowledged, "
            f"{len(result.stale)} stale"
        )
        for s in result.stale:
            print(f"error: {env.name}: stale {s.kind} {s.rule} on {s.where}: {s.detail}", file=sys.stderr)
        stale += len(result.stale)
    print(f"audit of {len(environments)} environments in {time.monotonic() - started:.1f} s")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
