"""Section 7: one list of findings from cdk-nag's packs, checkov and cfn-lint; the suppression register;
NIST 800-53 rev 5 control coverage.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tools.audit.assembly import Environment, Resource
from tools.audit.document import Code, Flag, Section
from tools.audit.nag_rules import NagRule
from tools.audit.scanners import ScanResults

State = Literal["passed", "failed", "acknowledged"]


@dataclass(frozen=True)
class Finding:
    """One check of one resource by one tool, with its outcome."""

    tool: str
    rule: str
    title: str
    severity: str
    state: State
    path: str
    template: str
    logical_id: str
    reason: str = ""

    @property
    def base_rule(self) -> str:
        """The rule id without cdk-nag's granular ``[...]`` part."""
        return self.rule.split("[", 1)[0]


@dataclass(frozen=True)
class Suppression:
    """One acknowledgment or skip found in the templates or declared in the table, and whether it still bites."""

    kind: str
    rule: str
    where: str
    reason: str
    status: Literal["matches", "stale", "absent", "not run"]
    detail: str = ""


@dataclass
class ComplianceResult:
    """Everything section 7 and the SARIF file are built from."""

    findings: list[Finding]
    suppressions: list[Suppression]
    nag_rules: tuple[NagRule, ...]

    @property
    def stale(self) -> list[Suppression]:
        """Acknowledgments and skips that silence nothing: each is an error."""
        return [s for s in self.suppressions if s.status == "stale"]


def _nag_reports(
    report: dict[str, Any] | None, env: str
) -> tuple[dict[tuple[str, str], Finding], set[tuple[str, str]]]:
    """cdk-nag's failed and acknowledged findings of one environment, deduplicated (the report repeats per stage)."""
    found: dict[tuple[str, str], Finding] = {}
    acknowledged_ids: set[tuple[str, str]] = set()
    for plugin in (report or {}).get("pluginReports", []):
        for kind in ("violations", "suppressedViolations"):
            for violation in plugin.get(kind, []):
                for construct in violation.get("violatingConstructs", []):
                    path = construct.get("constructPath", "")
                    if not path.startswith(f"{env}/"):
                        continue
                    rule = violation["ruleName"]
                    state: State = "acknowledged" if kind == "suppressedViolations" else "failed"
                    found[(rule, path)] = Finding(
                        tool="cdk-nag",
                        rule=rule,
                        title=str(violation.get("description", ""))[:300],
                        severity=str(violation.get("severity", "error")),
                        state=state,
                        path=path,
                        template="",
                        logical_id="",
                        reason=str(violation.get("reason", "")),
                    )
                    if state == "acknowledged":
                        acknowledged_ids.add((str(violation.get("acknowledgedId", "")), path))
    return found, acknowledged_ids


def nag_findings(
    env: Environment, report: dict[str, Any] | None, rules: tuple[NagRule, ...]
) -> tuple[list[Finding], set[tuple[str, str]]]:
    """cdk-nag per resource: failed and acknowledged from the validation report, and passed where a rule
    inspects the resource's type and reported nothing on it."""
    reported, acknowledged_ids = _nag_reports(report, env.name)
    by_path = {r.path: r for r in env.resources()}
    template_of = {r.path: str(s.template_file) for s in env.stacks for r in s.resources}
    findings = []
    for finding in reported.values():
        resource = by_path.get(finding.path)
        level = next((r.level for r in rules if r.rule_id == finding.base_rule), finding.severity)
        findings.append(
            Finding(
                **{
                    **finding.__dict__,
                    "severity": level,
                    "template": template_of.get(finding.path, ""),
                    "logical_id": resource.logical_id if resource else "",
                }
            )
        )
    hit = {(f.base_rule, f.path) for f in findings}
    for resource in env.resources():
        for rule in rules:
            if rule.applies_to(resource.type) and (rule.rule_id, resource.path) not in hit:
                findings.append(
                    Finding(
                        "cdk-nag",
                        rule.rule_id,
                        rule.info,
                        rule.level,
                        "passed",
                        resource.path,
                        template_of[resource.path],
                        resource.logical_id,
                    )
                )
    return findings, acknowledged_ids


def _resource_at(env: Environment, template: str, logical_id: str) -> Resource | None:
    for stack in env.stacks:
        if str(stack.template_file.resolve()) == template:
            return next((r for r in stack.resources if r.logical_id == logical_id), None)
    return None


def checkov_findings(env: Environment, results: dict[str, list[dict[str, Any]]]) -> list[Finding]:
    """checkov's passed, failed and skipped (acknowledged) checks on this environment's templates."""
    states: dict[str, State] = {"passed_checks": "passed", "failed_checks": "failed", "skipped_checks": "acknowledged"}
    mine = {str(s.template_file.resolve()) for s in env.stacks}
    findings = []
    for kind, state in states.items():
        for check in results.get(kind, []):
            template = str(check.get("file_abs_path", ""))
            if template not in mine:
                continue
            logical_id = str(check.get("resource", "")).split(".", 1)[-1]
            resource = _resource_at(env, template, logical_id)
            findings.append(
                Finding(
                    tool="checkov",
                    rule=str(check["check_id"]),
                    title=str(check.get("check_name", "")),
                    severity=str(check.get("severity") or "not rated"),
                    state=state,
                    path=resource.path if resource else f"{Path(template).name}/{logical_id}",
                    template=template,
                    logical_id=logical_id,
                    reason=str(check.get("check_result", {}).get("suppress_comment", "") or ""),
                )
            )
    return findings


def cfn_lint_findings(env: Environment, matches: list[dict[str, Any]]) -> list[Finding]:
    """cfn-lint's matches on this environment's templates (cfn-lint reports only what fails)."""
    mine = {str(s.template_file.resolve()): s for s in env.stacks}
    findings = []
    for match in matches:
        template = str(Path(match.get("Filename", "")).resolve())
        stack = mine.get(template)
        if stack is None:
            continue
        location = match.get("Location", {}).get("Path") or []
        logical_id = str(location[1]) if len(location) > 1 and location[0] == "Resources" else ""
        resource = next((r for r in stack.resources if r.logical_id == logical_id), None)
        rule = match.get("Rule", {})
        findings.append(
            Finding(
                tool="cfn-lint",
                rule=str(rule.get("Id", "")),
                title=str(match.get("Message", rule.get("ShortDescription", ""))),
                severity=str(match.get("Level", "Error")).lower(),
                state="failed",
                path=resource.path if resource else f"{stack.name}/{'/'.join(map(str, location))}",
                template=template,
                logical_id=logical_id,
            )
        )
    return findings


def suppression_register(
    env: Environment,
    findings: list[Finding],
    acknowledged_ids: set[tuple[str, str]],
    declared: list[tuple[str, str, str, str]],
    cfn_lint_ignores: list[tuple[str, str]],
    packs_run: set[str],
) -> list[Suppression]:
    """Every acknowledgment (cdk-nag), skip (checkov) and ignore (cfn-lint), and whether each still matches.

    Args:
        declared: (stack, path below the stack, finding, reason) from the project's acknowledgment table.
        cfn_lint_ignores: (rule, reason) checks the cfn-lint configuration ignores everywhere.
        packs_run: the cdk-nag plugins that reported (an acknowledgment for another cannot be judged).
    """
    out = []
    skipped = {(f.rule, f.path) for f in findings if f.tool == "checkov" and f.state == "acknowledged"}
    for resource in env.resources():
        for ack in resource.metadata.get("cdk_nag", {}).get("rules_to_suppress", []):
            rule = str(ack.get("id", ""))
            reason = str(ack.get("reason", ""))
            if (rule, resource.path) in acknowledged_ids:
                out.append(Suppression("cdk-nag acknowledgment", rule, resource.path, reason, "matches"))
            elif rule.split("::", 1)[0] not in packs_run:
                # e.g. aws-cdk-lib's acknowledgments for its CloudFormation-Validate plugin, which the app turns off.
                out.append(
                    Suppression(
                        "acknowledgment for a plugin that did not run",
                        rule,
                        resource.path,
                        reason,
                        "not run",
                        "no report of this plugin in cdk.out/validation-report.json",
                    )
                )
            else:
                out.append(
                    Suppression(
                        "cdk-nag acknowledgment",
                        rule,
                        resource.path,
                        reason,
                        "stale",
                        "the pack reports no such finding on this resource",
                    )
                )
        for skip in resource.metadata.get("checkov", {}).get("skip", []):
            rule = str(skip.get("id", ""))
            matches = (rule, resource.path) in skipped
            out.append(
                Suppression(
                    "checkov skip",
                    rule,
                    resource.path,
                    str(skip.get("comment", "")),
                    "matches" if matches else "stale",
                    "" if matches else "checkov reports no such skipped check on this resource",
                )
            )
    paths = {r.path for r in env.resources()}
    for stack, path, finding, reason in declared:
        full = f"{env.name}/{stack}/{path}"
        if full not in paths:
            out.append(
                Suppression(
                    "table entry",
                    finding,
                    full,
                    reason,
                    "absent",
                    "this environment has no such resource (skipped here by design)",
                )
            )
    lint_hits = {f.rule for f in findings if f.tool == "cfn-lint"}
    for rule, reason in cfn_lint_ignores:
        out.append(
            Suppression(
                "cfn-lint ignore (all templates)",
                rule,
                ".cfnlintrc.yaml",
                reason,
                "matches",
                "cfn-lint does not report ignored checks, so whether it still fires is not visible"
                if rule not in lint_hits
                else "",
            )
        )
    return out


def cfn_lint_ignores(config: Path) -> list[tuple[str, str]]:
    """The checks ``.cfnlintrc.yaml`` ignores, each with the comment block above it as its reason."""
    if not config.exists():
        return []
    out = []
    comments: list[str] = []
    in_ignores = False
    for line in config.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if re.match(r"^ignore_checks\s*:", line):
            in_ignores, comments = True, []
        elif in_ignores and stripped.startswith("#"):
            comments.append(stripped.lstrip("# "))
        elif in_ignores and stripped.startswith("- "):
            out.append((stripped[2:].strip(), " ".join(comments)))
            comments = []
        elif line and not line.startswith((" ", "#")):
            in_ignores = False
    return out


def evaluate(
    env: Environment,
    report: dict[str, Any] | None,
    scans: ScanResults,
    rules: tuple[NagRule, ...],
    declared: list[tuple[str, str, str, str]],
    lint_ignores: list[tuple[str, str]],
) -> ComplianceResult:
    """All findings and the register of one environment."""
    nag, acknowledged_ids = nag_findings(env, report, rules)
    findings = nag + checkov_findings(env, scans.checkov) + cfn_lint_findings(env, scans.cfn_lint)
    unique = {(f.tool, f.rule, f.path): f for f in findings}
    findings = sorted(unique.values(), key=lambda f: (f.path, f.tool, f.rule))
    packs_run = {str(p.get("pluginName")) for p in (report or {}).get("pluginReports", [])}
    register = suppression_register(env, findings, acknowledged_ids, declared, lint_ignores, packs_run)
    return ComplianceResult(findings, register, rules)


_FLAG: dict[str, Flag] = {"failed": "error", "acknowledged": "warn", "passed": ""}
_CONTROL_FLAG: dict[str, Flag] = {"failed": "error", "acknowledged": "warn", "passed": "ok"}


def compliance_section(
    env: Environment, result: ComplianceResult, report_found: bool
) -> tuple[Section, dict[str, str]]:
    """Section 7.

    Returns:
        The section and, for comparisons, every finding's state keyed by tool, rule and path.
    """
    section = Section("compliance", "7. Compliance")
    findings = result.findings
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for f in findings:
        counts[(f.tool, f.state)] += 1
    summary = section.table("tool", "failed", "acknowledged", "passed")
    for tool in ("cdk-nag", "checkov", "cfn-lint"):
        summary.add(
            tool,
            counts[(tool, "failed")],
            counts[(tool, "acknowledged")],
            counts[(tool, "passed")],
            flag="error" if counts[(tool, "failed")] else "",
        )
    section.para(
        "cdk-nag (AwsSolutions, NIST 800-53 rev 5, HIPAA Security) reports failures and acknowledgments; a rule counts "
        "as passed on a resource when the rule inspects that resource type and reported nothing on it. checkov "
        "reports passes itself. cfn-lint reports only problems, so it has no passed rows."
    )
    if not report_found:
        section.para(
            "cdk.out/validation-report.json is missing: cdk-nag's findings come from it (run `make synth`).", "error"
        )
    stale = result.stale
    for s in stale:
        section.para(f"Stale {s.kind}: {s.rule} on {s.where} silences nothing ({s.detail}). Remove it.", "error")
    section.heading("Findings that failed or are acknowledged, by construct path")
    table = section.table("construct path", "tool", "rule", "severity", "state", "reason or message")
    for f in findings:
        if f.state != "passed":
            table.add(Code(f.path), f.tool, Code(f.rule), f.severity, f.state, f.reason or f.title, flag=_FLAG[f.state])
    section.heading("Passed checks, by construct path")
    passed: dict[str, list[str]] = defaultdict(list)
    for f in findings:
        if f.state == "passed":
            passed[f.path].append(f.rule if f.tool != "checkov" else f"checkov {f.rule}")
    table = section.table("construct path", "passed", "rules")
    for path in sorted(passed):
        table.add(Code(path), len(passed[path]), ", ".join(sorted(passed[path])))
    section.heading("Suppression register")
    section.para(
        "Every cdk-nag acknowledgment and checkov skip written into the templates (from "
        "stacks/compliance/acknowledgments.py), every table entry this environment lacks the resource for, and "
        "every check cfn-lint's configuration ignores. A stale entry silences nothing and fails the audit."
    )
    table = section.table("kind", "rule", "where", "reason", "status")
    for s in sorted(result.suppressions, key=lambda s: (s.status != "stale", s.kind, s.where, s.rule)):
        status = s.status + (f": {s.detail}" if s.detail else "")
        table.add(s.kind, Code(s.rule), Code(s.where), s.reason, status, flag="error" if s.status == "stale" else "")
    _nist_coverage(section, env, result)
    data: dict[str, str] = {f"{f.tool} {f.rule} {f.path}": f.state for f in findings}
    return section, data


def nist_controls(env: Environment, result: ComplianceResult) -> dict[str, dict[str, list[str]]]:
    """For each NIST 800-53 rev 5 control: the rules that cover it, grouped by result."""
    types = {r.type.lower() for r in env.resources()}
    states: dict[str, set[str]] = defaultdict(set)
    for f in result.findings:
        if f.tool == "cdk-nag" and f.rule.startswith("NIST"):
            states[f.base_rule].add(f.state)
    controls: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rule in result.nag_rules:
        if not rule.pack.startswith("NIST"):
            continue
        if "failed" in states[rule.rule_id]:
            outcome = "failed"
        elif "acknowledged" in states[rule.rule_id]:
            outcome = "acknowledged"
        elif any(t in types for t in rule.resource_types):
            outcome = "passed"
        else:
            outcome = "not applicable"
        for control in rule.controls:
            controls[control][outcome].append(rule.rule_id.removeprefix("NIST.800.53.R5-"))
    return controls


def _control_key(control: str) -> tuple[str, int, str]:
    match = re.match(r"([A-Z]+)-(\d+)(.*)", control)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else (control, 0, "")


def _nist_coverage(section: Section, env: Environment, result: ComplianceResult) -> None:
    controls = nist_controls(env, result)
    section.heading("NIST 800-53 rev 5 control coverage")
    checked = [c for c, o in controls.items() if set(o) - {"not applicable"}]
    section.para(
        f"cdk-nag's NIST 800-53 rev 5 pack documents {len(controls)} controls across its rules (the mapping is read "
        f"from the installed cdk-nag package). {len(checked)} are covered by a rule that inspected a resource here. "
        "A control's result is the worst of its rules: failed, then acknowledged, then passed; 'not applicable' means "
        "no resource of the types its rules inspect exists in this environment."
    )
    table = section.table("control", "result", "rules failed / acknowledged", "rules passed", "not applicable")
    for control in sorted(controls, key=_control_key):
        outcomes = controls[control]
        result_text = next((o for o in ("failed", "acknowledged", "passed") if outcomes.get(o)), "not applicable")
        table.add(
            control,
            result_text,
            ", ".join(outcomes.get("failed", []) + outcomes.get("acknowledged", [])),
            ", ".join(outcomes.get("passed", [])),
            str(len(outcomes.get("not applicable", []))),
            flag=_CONTROL_FLAG.get(result_text, ""),
        )


def load_validation_report(outdir: Path) -> dict[str, Any] | None:
    """cdk-nag's report that synth wrote, or None if there is none."""
    path = outdir / "validation-report.json"
    if not path.exists():
        return None
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return report
