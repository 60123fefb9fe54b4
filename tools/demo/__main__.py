"""The whole loop on one machine, offline: train → register → approve → deploy → drift → retrain → redeploy.

    python -m tools.demo [--output build/demo] [--quick]

Run by ``make demo`` after the synth summary and the ML demo.
Every step is the platform's own code, configured from ``cdk.out``; what AWS would do and moto does
not is done here and said so (``tools/demo/loop.py``). Exits non-zero naming the step that failed;
every process it starts is stopped when it ends, also on Ctrl-C. Writes ``loop.png`` (drift per
feature and model quality per window, the retrain and the redeploy marked) and ``timeline.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from tools.demo.loop import ROOT, START, Load, Loop, StepFailed, Timeline, Window, drifted, sample, write_csv

# The sample, shuffled, split so that no traffic row was trained on by the model that answers it:
# version 1 trains on the first TRAIN rows; traffic comes from the rest.
TRAIN = 2000
CLEAN, DRIFTED, AFTER = 500, 1200, 477
QUICK = 200, 600, 200


def run(output: Path, quick: bool, echo: Callable[[str], None] = print) -> tuple[int, Loop | None]:
    """Run the loop; returns (exit code, the loop, for the caller's checks)."""
    timeline = Timeline(echo)
    work = output / "loop"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clean_n, drifted_n, after_n = QUICK if quick else (CLEAN, DRIFTED, AFTER)
    step = "setup"
    loop: Loop | None = None
    try:
        loop = Loop(cdk_out=ROOT / "cdk.out", work=work, timeline=timeline, quick=quick)
        step = "control plane"
        loop.start()
        loop.provision()
        header, rows = sample(seed=5)

        step = "build"
        training, traffic = rows[:TRAIN], rows[TRAIN:]
        run_dir = work / "v1"
        loop.train(write_csv(work / "v1-data" / "abalone-train.csv", header, training), run_dir, "v1")
        v1 = loop.register(run_dir, build="execution-1", why=f"the first build, on {TRAIN} rows of data/abalone.csv")

        step = "deploy"
        loop.approve_and_deploy(v1)

        step = "traffic (clean)"
        loop.send(traffic[:clean_n], header, label="clean", hour=START, labelled=0.5)
        step = "monitor (clean)"
        clean = Window("clean", START, 1)
        loop.monitor(clean)
        if loop.alarm(clean, "drift") is not None:
            raise StepFailed("the drift alarm fired on clean traffic drawn from the training data (a false positive)")

        step = "traffic (drifted)"
        hour = START + timedelta(hours=1)
        shifted = drifted(traffic[clean_n : clean_n + drifted_n], header)
        loop.send(shifted, header, label="drifted", hour=hour, labelled=1.0)
        step = "monitor (drifted)"
        window = Window("drifted", hour, 1)
        loop.monitor(window)
        event = loop.alarm(window, "drift")
        if event is None:
            raise StepFailed("the drift alarm did not fire on drifted traffic")

        quality_alarm = loop.alarm(window, "model-quality")

        step = "retrain"
        decision = loop.retrain(event)
        if decision.action != "started":
            raise StepFailed(f"the retrain did not start: {decision.action}: {decision.reason}")
        # Another alarm within the cooldown: model quality's, if it fired too, else drift's next state change.
        if quality_alarm is None:
            quality_alarm = json.loads(json.dumps(event))
            quality_alarm["id"] = f"{event['id']}-next"
        second = loop.retrain(quality_alarm)
        if second.action != "skipped_cooldown":
            raise StepFailed(f"a second alarm within the cooldown did {second.action}, not skipped_cooldown")
        loop.marks.append(("retrain started", len(loop.windows) - 0.7))

        step = "build (retrain)"
        # The latest data: the drifted window's traffic with its ground truth, which the retrain trains on.
        data = write_csv(work / "retrain" / "latest.csv", header, shifted)
        v2_dir = work / "v2"
        loop.train(data, v2_dir, "v2")
        v2 = loop.register(v2_dir, build="execution-2", why=f"retrain by {event['detail']['alarmName']}")

        step = "redeploy"
        features = [",".join(r[:-1]) for r in drifted(traffic[:200], header, seed=3)]
        port = loop.endpoints["prod"].router.port
        loop.approve_and_deploy(v2, traffic_during=lambda: Load(port, features, per_second=100))
        if loop.switch_failures:
            raise StepFailed(f"{loop.switch_failures} requests failed while prod switched to v2")
        loop.marks.append(("v2 deployed", len(loop.windows) - 0.3))
        # The requests sent during the switch are filed in their own hour, which no window here judges.
        switched = loop.file_capture(START + timedelta(hours=2))
        timeline("traffic", f"{switched} records answered during the switch filed under the next simulated hour")

        step = "traffic (after)"
        hour = START + timedelta(hours=3)
        later = drifted(traffic[clean_n + drifted_n : clean_n + drifted_n + after_n], header, seed=11)
        loop.send(later, header, label="after", hour=hour, labelled=1.0)
        step = "monitor (after)"
        after = Window("after", hour, 2)
        loop.monitor(after)
        resolved = loop.alarm(after, "drift") is None
        timeline(
            "monitor", "v2's baseline is the drifted data: " + ("no drift alarm" if resolved else "still drifting")
        )

        step = "report"
        from tools.demo.report import plot

        threshold = 0.1
        picture = plot(loop.windows, loop.marks, output / "loop.png", threshold)
        subjects = loop.notifications()
        (output / "timeline.json").write_text(
            json.dumps(
                {
                    "events": [{"at": round(e.at, 2), "step": e.step, "text": e.text} for e in timeline.events],
                    "windows": [
                        {
                            "label": w.label,
                            "hour": w.hour.isoformat(),
                            "version": w.version,
                            "drift": w.drift,
                            "quality": w.quality,
                            "violations": w.violations,
                            "alarms": w.alarms,
                        }
                        for w in loop.windows
                    ],
                    "notifications": subjects,
                },
                indent=2,
            )
            + "\n"
        )
        timeline("report", f"{picture} and {output / 'timeline.json'}; {len(subjects)} notifications published")
        return 0, loop
    except StepFailed as exc:
        echo(f"error: step {step!r} failed: {exc}")
        return 1, loop
    except KeyboardInterrupt:
        echo(f"interrupted during {step!r}: stopping every process it started")
        return 130, loop
    except Exception as exc:  # a bug or an unexpected answer: still name the step, with the traceback
        traceback.print_exc()
        echo(f"error: step {step!r} failed unexpectedly: {type(exc).__name__}: {exc}")
        return 1, loop
    finally:
        if loop is not None:
            loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "demo")
    parser.add_argument("--quick", action="store_true", help="less traffic and a smaller search (tests)")
    args = parser.parse_args(argv)
    print("== the whole loop, offline (python -m tools.demo)")
    code, _ = run(args.output, args.quick)
    if code == 0:
        print(
            f"\nNext: open {args.output / 'loop.png'} (the loop, drawn) and {args.output / 'timeline.json'}; "
            "read the auditor's report (make audit, then build/audit/dev/index.html); "
            "or deploy an environment (make deploy ENV=dev; see the README's Deploying)."
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
