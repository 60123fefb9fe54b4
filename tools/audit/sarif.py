"""findings.sarif: every scanner's failed and acknowledged findings in SARIF 2.1.0, one run per tool.

Acknowledged findings carry a SARIF suppression with its justification, so code-scanning
tools show them as suppressed rather than open. Locations point at the template line of the
resource, and name the construct path as the logical location.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tools.audit.compliance import Finding

SCHEMA_FILE = Path(__file__).with_name("schemas") / "sarif-schema-2.1.0.json"
SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO = {
    "cdk-nag": "https://github.com/cdklabs/cdk-nag",
    "checkov": "https://www.checkov.io/",
    "cfn-lint": "https://github.com/aws-cloudformation/cfn-lint",
}
_LEVELS = {"error": "error", "warning": "warning", "warn": "warning", "informational": "note", "info": "note"}


@cache
def _resource_lines(template: str) -> dict[str, int]:
    """The line where each resource starts in a template file (CDK writes one key per line)."""
    lines: dict[str, int] = {}
    in_resources = False
    for number, line in enumerate(Path(template).read_text(encoding="utf-8").splitlines(), 1):
        if re.match(r'^\s{0,2}"Resources": \{', line):
            in_resources = True
            continue
        match = re.match(r'^\s{1,4}"([A-Za-z0-9]+)": \{$', line)
        if in_resources and match and match.group(1) not in lines:
            lines[match.group(1)] = number
    return lines


def _uri(template: str, root: Path) -> str:
    path = Path(template)
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def to_sarif(findings: list[Finding], versions: dict[str, str], root: Path) -> dict[str, Any]:
    """The SARIF log: passed checks are left out; failed are results, acknowledged are suppressed results."""
    runs = []
    for tool in ("cdk-nag", "checkov", "cfn-lint"):
        mine = [f for f in findings if f.tool == tool and f.state != "passed"]
        rule_ids = sorted({f.rule for f in mine})
        index = {rule: i for i, rule in enumerate(rule_ids)}
        titles = {f.rule: f.title for f in mine}
        results = []
        for f in mine:
            result: dict[str, Any] = {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": _LEVELS.get(f.severity.lower(), "error" if f.state == "failed" else "warning"),
                "message": {"text": f"{f.title or f.rule} ({f.path})"},
                "locations": [_location(f, root)],
            }
            if f.state == "acknowledged":
                result["suppressions"] = [{"kind": "inSource", "status": "accepted", "justification": f.reason}]
            results.append(result)
        runs.append(
            {
                "tool": {
                    "driver": {
                        "name": tool,
                        "version": versions.get(tool, "unknown"),
                        "informationUri": _INFO[tool],
                        "rules": [
                            {"id": rule, "shortDescription": {"text": (titles[rule] or rule)[:1000]}}
                            for rule in rule_ids
                        ],
                    }
                },
                "results": results,
            }
        )
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": runs}


def _location(f: Finding, root: Path) -> dict[str, Any]:
    location: dict[str, Any] = {"logicalLocations": [{"fullyQualifiedName": f.path, "kind": "resource"}]}
    if f.template:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.template, root)}}
        line = _resource_lines(f.template).get(f.logical_id) if f.logical_id else None
        if line:
            physical["region"] = {"startLine": line}
        location["physicalLocation"] = physical
    return location


def load_schema() -> dict[str, Any]:
    """The SARIF 2.1.0 JSON schema shipped with the audit (see schemas/README.md for its origin)."""
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema
