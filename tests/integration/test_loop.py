"""The whole loop as one test: `make demo`'s loop (``tools/demo``), its traffic shortened, each transition asserted.

It runs the platform's own code configured from the synthesized ``cdk.out`` (the deploy's state
machine and functions, the monitoring and retrain functions, the alarms and rules) against a moto
server, with endpoints that are real model servers; what moto cannot do is done by the loop and
named in ``tools/demo/loop.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.demo.__main__ import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    if not (ROOT / "cdk.out" / "manifest.json").exists():
        pytest.fail("cdk.out holds no cloud assembly: run `make synth` (and `make pipeline-definition`) first")
    output = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    code, world = run(output, quick=True, echo=lines.append)
    return code, world, output, lines


def test_the_loop_runs_to_its_end_and_writes_the_picture_and_the_timeline(loop) -> None:
    code, _, output, lines = loop
    assert code == 0, "\n".join(lines[-15:])
    assert (output / "loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    timeline = json.loads((output / "timeline.json").read_text())
    assert [w["label"] for w in timeline["windows"]] == ["clean", "drifted", "after"]


def test_the_versions_went_pending_then_approved_and_prod_serves_the_retrained_one(loop) -> None:
    _, world, _, _ = loop
    # The loop has stopped its moto server on leaving: what happened is in its timeline.
    events = [e.text for e in world.timeline.events]
    assert any(text.startswith("v1 registered PendingManualApproval") for text in events)
    assert any(
        text.startswith("v2 registered PendingManualApproval (retrain by mlops-prod-monitoring-drift)")
        for text in events
    )
    assert [e for e in events if e.startswith("v1 serves in")] == ["v1 serves in dev (v1), staging (v1), prod (v1)"]
    assert [e for e in events if e.startswith("v2 serves in")] == ["v2 serves in dev (v2), staging (v2), prod (v2)"]
    # The endpoint's model before and after: the windows record which version answered.
    assert [w.version for w in world.windows] == [1, 1, 2]


def test_drift_is_flagged_only_where_it_was_injected_and_the_retrained_model_removes_it(loop) -> None:
    _, world, _, _ = loop
    clean, drifted, after = world.windows
    assert clean.violations == 0 and not any(clean.drift.values())
    # Injected: shell_weight scaled by 1.6, a third of sex moved to I; the model's output follows.
    assert {f for f, d in drifted.drift.items() if d > 0} == {"shell_weight", "sex", "predicted_rings"}
    assert drifted.alarms == ["mlops-prod-monitoring-drift", "mlops-prod-monitoring-model-quality"]
    assert clean.alarms == [] and after.alarms == []
    assert after.violations == 0 and not any(after.drift.values())
    # Model quality: worse on the drifted traffic, back after the retrain.
    assert drifted.quality["rmse"] > clean.quality["rmse"]
    assert after.quality["rmse"] < drifted.quality["rmse"]


def test_exactly_one_retrain_started_and_the_second_alarm_was_skipped_for_the_cooldown(loop) -> None:
    _, world, output, _ = loop
    retrains = [e.text for e in world.timeline.events if e.step == "retrain"]
    assert len(retrains) == 2
    assert "retrain function: started: alarm mlops-prod-monitoring-drift" in retrains[0]
    assert "retrain function: skipped_cooldown" in retrains[1]
    subjects = json.loads((output / "timeline.json").read_text())["notifications"]
    assert subjects.count("Retrain started: mlops-prod-endpoint") == 1
    assert subjects.count("Retrain skipped (cooldown): mlops-prod-endpoint") == 1


def test_no_request_failed_while_prod_switched_blue_green(loop) -> None:
    _, world, _, _ = loop
    switch = [e.text for e in world.timeline.events if e.text.startswith("during the switch:")]
    assert len(switch) == 1 and switch[0].endswith("0 failed (old server stopped after the switch)")
    sent = int(switch[0].split()[3])
    assert sent > 50  # traffic really flowed during the switch
    assert world.switch_failures == 0


def test_the_monitoring_reports_are_model_monitors_files(loop) -> None:
    _, world, _, _ = loop
    jobs = sorted(Path(world.work / "jobs").iterdir())
    assert len(jobs) == 6  # data and model quality, three windows
    for job in jobs:
        produced = {p.name for p in (job / "output").rglob("*.json")}
        assert {"statistics.json", "constraint_violations.json"} <= produced, job.name
