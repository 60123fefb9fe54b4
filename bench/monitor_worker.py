"""One drift check, timed in-process: ours (ml_code.monitor), evidently or whylogs. Used by bench/monitor.py.

    python bench/monitor_worker.py ours      --baseline DIR        --data CSV   (in .venv)
    python bench/monitor_worker.py evidently --reference CSV       --data CSV   (in .venv-bench)
    python bench/monitor_worker.py whylogs   --reference CSV       --data CSV   (in .venv-bench)

Prints one JSON object: the wall and CPU seconds the check took (imports excluded, reading the data
included), the process's peak RSS (VmHWM: since exec, unlike getrusage, whose maxrss keeps the
forking parent's peak), and the columns the tool flagged (drift, and for ours every violation).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _ours(baseline: Path, data: Path) -> tuple[float, dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    import tempfile

    from ml_code.monitor.reference import load_reference
    from ml_code.monitor.run import monitor

    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        report = monitor(baseline, data, Path(out), reference=load_reference(baseline))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    flagged: dict[str, list[str]] = {}
    for v in report.data_quality.violations:
        flagged.setdefault(v.feature_name, []).append(v.constraint_check_type)
    return seconds, {"cpu": cpu, "flagged": flagged, "rows": report.batch.rows}


def _evidently(reference: Path, data: Path) -> tuple[float, dict[str, Any]]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start, cpu = time.perf_counter(), time.process_time()
    ref, cur = pd.read_csv(reference), pd.read_csv(data)
    result = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref).dict()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    flagged: dict[str, list[str]] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        value, threshold, method = metric["value"], config["threshold"], config["method"]
        # evidently's rule: a p-value drifts at or below the threshold, a distance at or above it.
        drifted = value <= threshold if "p_value" in method else value >= threshold
        if drifted:
            flagged[config["column"]] = [f"{method} {value:.4g}"]
    return seconds, {"cpu": cpu, "flagged": flagged, "rows": len(cur)}


def _whylogs(reference: Path, data: Path) -> tuple[float, dict[str, Any]]:
    import pandas as pd
    import whylogs as why
    from whylogs.viz.drift.column_drift_algorithms import calculate_drift_scores

    # The reference profile is made ahead, as a registered baseline is.
    reference_view = why.log(pd.read_csv(reference)).view()
    start, cpu = time.perf_counter(), time.process_time()
    cur = pd.read_csv(data)
    scores = calculate_drift_scores(
        target_view=why.log(cur).view(), reference_view=reference_view, with_thresholds=True
    )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    flagged = {
        column: [f"{s['algorithm']} p={s['pvalue']:.3g}"]
        for column, s in scores.items()
        if s and s.get("drift_category") == "DRIFT"
    }
    return seconds, {"cpu": cpu, "flagged": flagged, "rows": len(cur)}


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=["ours", "evidently", "whylogs"])
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args()
    if args.tool == "ours":
        seconds, result = _ours(args.baseline, args.data)
    elif args.tool == "evidently":
        seconds, result = _evidently(args.reference, args.data)
    else:
        seconds, result = _whylogs(args.reference, args.data)
    print(json.dumps({"seconds": seconds, "peak_mb": _peak_mb(), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
