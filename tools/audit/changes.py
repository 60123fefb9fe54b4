"""Section 9: what differs from an earlier report (``make audit BASELINE=path/to/old/build/audit``).

Each report writes ``audit.json`` beside its page: the resources, permissions, encryption,
network rules, findings and cost lines it showed. Comparing two of them needs no templates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tools.audit.document import Code, Section

CATEGORIES = (
    ("resources", "Resources"),
    ("permissions", "Permissions (roles' trust and grants, resource policies)"),
    ("encryption", "Encryption"),
    ("network", "Network rules and internet paths"),
    ("findings", "Findings"),
    ("cost", "Idle cost lines (USD per month)"),
)


def _flatten(value: Any) -> dict[str, str]:
    """A category as key -> text; lists (a role's statements) become one key per item."""
    out: dict[str, str] = {}
    for key, item in (value or {}).items():
        if isinstance(item, list):
            for entry in item:
                out[f"{key} :: {entry}"] = ""
        elif isinstance(item, dict):
            out[key] = json.dumps(item, sort_keys=True)
        else:
            out[key] = str(item)
    return out


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[tuple[str, str, str, str]]]:
    """Per category: (change, key, before, after) rows for everything added, removed or changed."""
    out: dict[str, list[tuple[str, str, str, str]]] = {}
    for category, _ in CATEGORIES:
        old, new = _flatten(before.get(category)), _flatten(after.get(category))
        rows = [("added", k, "", new[k]) for k in sorted(new.keys() - old.keys())]
        rows += [("removed", k, old[k], "") for k in sorted(old.keys() - new.keys())]
        rows += [("changed", k, old[k], new[k]) for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
        out[category] = rows
    return out


def changes_section(env: str, data: dict[str, Any], baseline: Path) -> Section:
    """Section 9, against ``baseline/<env>/audit.json``."""
    section = Section("changes", "9. What changed")
    previous_file = baseline / env / "audit.json"
    if not previous_file.exists():
        section.para(
            f"{previous_file} does not exist: the baseline has no report of {env}, so everything is new.", "warn"
        )
        previous: dict[str, Any] = {}
    else:
        previous = json.loads(previous_file.read_text(encoding="utf-8"))
    section.para(
        f"Compared with {previous_file} (commit {previous.get('commit', '?')}). Idle cost: "
        f"{previous.get('cost_total', 0):.2f} before, {data['cost_total']:.2f} now "
        f"({data['cost_total'] - previous.get('cost_total', 0):+.2f} USD per month)."
    )
    for category, title in CATEGORIES:
        rows = diff(previous, data)[category]
        section.heading(f"{title}: {len(rows)} changes")
        if rows:
            table = section.table("change", "what", "before", "after")
            for change, key, old, new in rows:
                table.add(change, Code(key), old, new, flag="warn" if change != "removed" else "")
    return section
