"""checkov and cfn-lint, run from their own virtualenv over the assembly, side by side."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


class ScannerError(Exception):
    """A scanner did not run or printed something that is not its report."""


@dataclass
class ScanResults:
    """The raw reports: checkov's results (all frameworks merged), cfn-lint's matches, and versions."""

    checkov: dict[str, list[dict[str, Any]]]
    cfn_lint: list[dict[str, Any]]
    checkov_version: str
    cfn_lint_version: str


def _start(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError as exc:
        raise ScannerError(f"{argv[0]} not found: run `make install` (it creates .venv-scan)") from exc


def _version(binary: Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).strip().split()[-1] if result.returncode == 0 else "unknown"


def _installed_version(scan_venv: Path, distribution: str) -> str:
    """A package's version in the scan venv, from its dist-info directory name (no process started)."""
    found = sorted(scan_venv.glob(f"lib/python*/site-packages/{distribution}-*.dist-info"))
    return found[-1].name.removeprefix(f"{distribution}-").removesuffix(".dist-info") if found else "unknown"


def cache_key(templates: list[Path], project_root: Path, scan_venv: Path) -> str:
    """What the scanners' reports depend on: every template's bytes, the scanners' versions and configuration."""
    digest = hashlib.sha256()
    for path in [*sorted(templates), project_root / ".cfnlintrc.yaml"]:
        digest.update(str(path.name).encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    for distribution in ("checkov", "cfn_lint"):
        digest.update(_installed_version(scan_venv, distribution).encode())
    return digest.hexdigest()


def run_scanners_cached(templates: list[Path], project_root: Path, scan_venv: Path, cache_dir: Path) -> ScanResults:
    """``run_scanners``, reusing the reports of an earlier run over byte-identical templates.

    Synth is deterministic, so a re-synth of the same commit hits the cache; any change to a
    template, to ``.cfnlintrc.yaml`` or to a scanner's version runs both scanners again.
    """
    cache_file = cache_dir / f"{cache_key(templates, project_root, scan_venv)}.json"
    if cache_file.exists():
        return ScanResults(**json.loads(cache_file.read_text(encoding="utf-8")))
    results = run_scanners(templates, project_root, scan_venv)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("*.json"):
        old.unlink()
    cache_file.write_text(json.dumps(asdict(results)), encoding="utf-8")
    return results


def run_scanners(templates: list[Path], project_root: Path, scan_venv: Path) -> ScanResults:
    """Run checkov and cfn-lint over ``templates`` at the same time and parse their JSON.

    checkov runs in the templates' directory so that a project ``.checkov.yaml`` (which turns
    passed checks off in its output) does not apply; cfn-lint runs from the project root so that
    its ``.cfnlintrc.yaml`` (the reasoned ignore list) does, exactly as ``make scan`` runs it.

    Raises:
        ScannerError: a scanner is missing or its output is not the JSON report.
    """
    scan_venv = scan_venv.absolute()
    checkov_bin, cfn_lint_bin = scan_venv / "bin" / "checkov", scan_venv / "bin" / "cfn-lint"
    files = [str(t.resolve()) for t in templates]
    checkov_args = [str(checkov_bin), "--framework", "cloudformation", "-o", "json", "--skip-download"]
    for f in files:
        checkov_args += ["-f", f]
    checkov = _start(checkov_args, cwd=templates[0].parent)
    cfn_lint = _start([str(cfn_lint_bin), "--format", "json", "--", *files], cwd=project_root)
    checkov_out, checkov_err = checkov.communicate()
    lint_out, lint_err = cfn_lint.communicate()
    try:
        checkov_report = json.loads(checkov_out)
    except json.JSONDecodeError as exc:
        raise ScannerError(f"checkov printed no JSON report (exit {checkov.returncode}): {checkov_err[-800:]}") from exc
    try:
        lint_report = json.loads(lint_out) if lint_out.strip() else []
    except json.JSONDecodeError as exc:
        raise ScannerError(f"cfn-lint printed no JSON report (exit {cfn_lint.returncode}): {lint_err[-800:]}") from exc
    # cfn-lint exits 0 (clean), 2 (errors), 4 (warnings), 8 (informational) or their sum; anything else is a crash.
    if cfn_lint.returncode not in range(0, 16) or not isinstance(lint_report, list):
        raise ScannerError(f"cfn-lint failed (exit {cfn_lint.returncode}): {lint_err[-800:]}")
    merged: dict[str, list[dict[str, Any]]] = {"passed_checks": [], "failed_checks": [], "skipped_checks": []}
    version = "unknown"
    for report in checkov_report if isinstance(checkov_report, list) else [checkov_report]:
        for kind in merged:
            merged[kind] += report.get("results", {}).get(kind, [])
        version = report.get("summary", {}).get("checkov_version", version)
    return ScanResults(merged, lint_report, version, _version(cfn_lint_bin))
