"""Drift benchmark: ml_code.monitor against evidently and whylogs, on the same generated data.

    bash bench/setup_bench_venv.sh          # once: evidently and whylogs in .venv-bench
    .venv/bin/python bench/monitor.py [--rows 1000000] [--baseline-rows 100000] [--capture]

A 100,000-row baseline and two 1,000,000-row batches drawn from the same distributions: a clean one,
and one with three injected drifts (the income column scaled by 1.5, the plan column's shares moved
from 50/30/20 % to 35/45/20 %, 5 % of the balance column made missing). The first column is the
model's output, as Model Monitor lays captured data out; the tenure column has 2 % missing values
in the baseline and in both batches (not a drift).

Each tool runs in its own process (ours in .venv, the others in .venv-bench); the time is the
check itself, reading the batch included, imports excluded; the memory is the process's peak RSS.
The expected verdict: nothing on the clean batch; exactly income, plan and balance on the drifted one.
With ``--capture`` ours also reads the drifted batch as SageMaker data-capture JSONL (one record per row).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml_code.baseline import build_baseline  # noqa: E402
from ml_code.schema import DataSchema, Feature, ProblemType  # noqa: E402

BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
WORKER = ROOT / "bench" / "monitor_worker.py"
INJECTED = {"income", "plan", "balance"}
NUMERIC = ["predicted_churn_score", "age", "income", "score", "ratio", "tenure", "balance"]
CATEGORICAL = ["region", "plan"]


def generate(rows: int, seed: int, *, drifted: bool = False) -> pd.DataFrame:
    """One batch of the benchmark's distributions (with the three drifts when ``drifted``)."""
    rng = np.random.default_rng(seed)
    plan_shares = [0.35, 0.45, 0.20] if drifted else [0.50, 0.30, 0.20]
    frame = pd.DataFrame(
        {
            "predicted_churn_score": rng.normal(10, 3, rows).round(4),
            "age": rng.integers(18, 90, rows).astype(float),
            "income": (rng.lognormal(10, 0.5, rows) * (1.5 if drifted else 1.0)).round(2),
            "score": rng.normal(0, 1, rows).round(5),
            "ratio": rng.uniform(0, 1, rows).round(5),
            "tenure": rng.exponential(4, rows).round(3),
            "balance": rng.normal(1000, 250, rows).round(2),
            "region": rng.choice(["north", "south", "east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=plan_shares),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "tenure"] = np.nan
    if drifted:
        frame.loc[rng.random(rows) < 0.05, "balance"] = np.nan
    return frame


def _write_capture(frame: pd.DataFrame, path: Path) -> None:
    """The frame as data-capture JSONL: one record per row, output column first as Model Monitor expects."""
    inputs = frame.iloc[:, 1:].to_csv(header=False, index=False, lineterminator="\n").splitlines()
    outputs = frame.iloc[:, 0].to_csv(header=False, index=False, lineterminator="\n").splitlines()
    with path.open("w", encoding="utf-8") as handle:
        for i, (request, response) in enumerate(zip(inputs, outputs, strict=True)):
            record = {
                "captureData": {
                    "endpointInput": {
                        "observedContentType": "text/csv",
                        "mode": "INPUT",
                        "data": request,
                        "encoding": "CSV",
                    },
                    "endpointOutput": {
                        "observedContentType": "text/csv; charset=utf-8",
                        "mode": "OUTPUT",
                        "data": response + "\n",
                        "encoding": "CSV",
                    },
                },
                "eventMetadata": {"eventId": f"event-{i}", "inferenceTime": "2026-11-23T19:00:00Z"},
                "eventVersion": "0",
            }
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")


def prepare(work: Path, rows: int, baseline_rows: int, capture: bool) -> dict[str, Path]:
    """Write (once per size) the baseline data and registered baseline, and the two batches."""
    work.mkdir(parents=True, exist_ok=True)
    stamp = work / "sizes.json"
    wanted = {"rows": rows, "baseline_rows": baseline_rows, "capture": capture, "version": 1}
    paths = {
        "reference": work / "baseline.csv",
        "baseline": work / "baseline",
        "clean": work / "clean.csv",
        "drifted": work / "drifted.csv",
    }
    if capture:
        paths["capture"] = work / "drifted-capture.jsonl"
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return paths
    reference = generate(baseline_rows, seed=1)
    reference.to_csv(paths["reference"], index=False)
    schema = DataSchema(
        target="churn_score",
        problem_type=ProblemType.REGRESSION,
        features=tuple(Feature(c, "numeric" if c in NUMERIC else "categorical") for c in reference.columns),
    )
    statistics, constraints = build_baseline(reference, schema)
    paths["baseline"].mkdir(exist_ok=True)
    (paths["baseline"] / "statistics.json").write_text(json.dumps(statistics))
    (paths["baseline"] / "constraints.json").write_text(json.dumps(constraints))
    generate(rows, seed=2).to_csv(paths["clean"], index=False)
    drifted = generate(rows, seed=3, drifted=True)
    drifted.to_csv(paths["drifted"], index=False)
    if capture:
        _write_capture(drifted, paths["capture"])
    stamp.write_text(json.dumps(wanted))
    return paths


def run_tool(tool: str, paths: dict[str, Path], batch: str) -> dict:
    if tool == "ours":
        command = [
            sys.executable,
            str(WORKER),
            "ours",
            "--baseline",
            str(paths["baseline"]),
            "--data",
            str(paths[batch]),
        ]
    else:
        if not BENCH_PYTHON.is_file():
            return {"error": f"{BENCH_PYTHON} missing: run bash bench/setup_bench_venv.sh"}
        command = [
            str(BENCH_PYTHON),
            str(WORKER),
            tool,
            "--reference",
            str(paths["reference"]),
            "--data",
            str(paths[batch]),
        ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _verdict(flagged: set[str], expected: set[str]) -> str:
    if flagged == expected:
        return "exact"
    missed, invented = sorted(expected - flagged), sorted(flagged - expected)
    return "; ".join(p for p in (f"missed {missed}" if missed else "", f"invented {invented}" if invented else "") if p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-monitor")
    parser.add_argument("--tools", default="ours,evidently,whylogs")
    parser.add_argument("--capture", action="store_true", help="also time ours on the drifted batch as capture JSONL")
    args = parser.parse_args()
    paths = prepare(args.work, args.rows, args.baseline_rows, args.capture)
    print(f"baseline {args.baseline_rows} rows; batches {args.rows} rows; injected drifts: {sorted(INJECTED)}")
    header = f"{'tool':<10} {'batch':<9} {'wall s':>7} {'CPU s':>6} {'peak MB':>8}  flagged (verdict)"
    print(header)
    print("-" * len(header))
    runs = [(tool, batch) for tool in args.tools.split(",") for batch in ("clean", "drifted")]
    if args.capture:
        runs.append(("ours", "capture"))
    for tool, batch in runs:
        result = run_tool(tool, paths, batch)
        if "error" in result:
            print(f"{tool:<10} {batch:<9} {'-':>7} {'-':>6} {'-':>8}  error: {result['error']}")
            continue
        flagged = set(result["flagged"])
        expected = set() if batch == "clean" else INJECTED
        detail = ", ".join(f"{c} [{'; '.join(result['flagged'][c])}]" for c in sorted(flagged)) or "none"
        print(
            f"{tool:<10} {batch:<9} {result['seconds']:>7.2f} {result['cpu']:>6.2f} {result['peak_mb']:>8.0f}  "
            f"{detail} ({_verdict(flagged, expected)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
