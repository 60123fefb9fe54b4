"""`make audit`'s program over the real cdk.out: every resource once, SARIF valid, the page in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tools.audit.assembly import load_assembly
from tools.audit.sarif import load_schema

ROOT = Path(__file__).resolve().parents[2]
CDK_OUT = ROOT / "cdk.out"
SCREENSHOTS = ROOT / "build" / "audit-screenshots"


@pytest.fixture(scope="session")
def audit_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit of the assembly `make synth` wrote, by the real command line."""
    if not (CDK_OUT / "manifest.json").exists():
        pytest.fail(f"{CDK_OUT} holds no cloud assembly: run `make synth` (and `make pipeline-definition`) first")
    out = tmp_path_factory.mktemp("audit")
    result = subprocess.run(
        [sys.executable, "-m", "tools.audit", "--cdk-out", str(CDK_OUT), "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _environments() -> list[str]:
    if not (CDK_OUT / "manifest.json").exists():
        return ["(no cdk.out)"]
    return [env.name for env in load_assembly(CDK_OUT)]


@pytest.mark.slow
@pytest.mark.parametrize("env_name", _environments())
def test_given_the_real_assembly_then_every_resource_appears_once_in_the_inventory(
    audit_output: Path, env_name: str
) -> None:
    env = next(e for e in load_assembly(CDK_OUT) if e.name == env_name)
    report = (audit_output / env_name / "report.md").read_text(encoding="utf-8")
    inventory = report.split("## 2. Inventory", 1)[1].split("\n## 3.", 1)[0]
    for resource in env.resources():
        assert inventory.count(f"`{resource.path}`") == 1, resource.path
    data = json.loads((audit_output / env_name / "audit.json").read_text(encoding="utf-8"))
    assert set(data["resources"]) == {r.key for r in env.resources()}
    for name in ("index.html", "report.md", "findings.sarif"):
        assert (audit_output / env_name / name).stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize("env_name", _environments())
def test_given_the_real_assembly_then_findings_sarif_is_valid_and_holds_every_acknowledgment(
    audit_output: Path, env_name: str
) -> None:
    log = json.loads((audit_output / env_name / "findings.sarif").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(load_schema()).validate(log)
    runs = {run["tool"]["driver"]["name"]: run for run in log["runs"]}
    assert set(runs) == {"cdk-nag", "checkov", "cfn-lint"}
    # Every acknowledgment written into the templates for a pack that ran is one suppressed result.
    env = next(e for e in load_assembly(CDK_OUT) if e.name == env_name)
    nag_acks = {
        (ack["id"].split("::", 1)[1], r.path)
        for r in env.resources()
        for ack in r.metadata.get("cdk_nag", {}).get("rules_to_suppress", [])
        if not ack["id"].startswith("CloudFormation-Validate::")
    }
    suppressed = {
        (res["ruleId"], res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"])
        for res in runs["cdk-nag"]["results"]
        if res.get("suppressions")
    }
    assert suppressed == nag_acks
    skips = sum(len(r.metadata.get("checkov", {}).get("skip", [])) for r in env.resources())
    assert sum(1 for res in runs["checkov"]["results"] if res.get("suppressions")) == skips


def _browser() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.slow
@pytest.mark.parametrize("env_name", _environments())
def test_given_the_page_in_headless_chromium_then_no_console_error_no_request_and_no_sideways_scroll(
    audit_output: Path, env_name: str
) -> None:
    browser_path = _browser()
    if browser_path is None:
        pytest.skip("no chromium found: install Debian's chromium (apt-get install chromium) to open the page")
    from playwright.sync_api import sync_playwright

    page_file = (audit_output / env_name / "index.html").resolve()
    page_url = page_file.as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url) if r.url != page_url else None)
            page.goto(page_url, wait_until="load")
            scroll_width, client_width = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            headings = page.locator("nav a").all_inner_texts()
            svg_boxes = page.locator("figure svg g.node").count()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{env_name}.png"))
            page.goto(f"{page_url}#architecture")
            page.screenshot(path=str(SCREENSHOTS / f"{env_name}-architecture.png"))
        finally:
            browser.close()
    assert errors == []
    assert requests == []
    assert scroll_width <= client_width
    assert [re.sub(r"^\d+\. ", "", h) for h in headings][:8] == [
        "Provenance",
        "Inventory",
        "Architecture",
        "Encryption at rest",
        "Identity and access",
        "Network",
        "Compliance",
        "Idle cost",
    ]
    env = next(e for e in load_assembly(CDK_OUT) if e.name == env_name)
    assert svg_boxes == sum(1 for r in env.resources() if r.type != "AWS::CDK::Metadata")
