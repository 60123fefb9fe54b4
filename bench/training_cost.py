"""Training-cost benchmark: wall time and peak memory of `local_run` on the sample data.

    .venv/bin/python bench/training_cost.py [--repeats 3]

Each run is a fresh process; peak memory is its maximum resident set (ru_maxrss). Beside
it, for scale: the SageMaker project template's training alone (its preprocessing and one
50-round XGBoost) on the same data, also in a fresh process. Ours does more work for its
better model: 24 searched candidates, each fitted on 5 cross-validation folds (120 fits), a
blend weighted on their out-of-fold predictions, a refit, evaluation and a baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.sample_model import SAMPLE as DATA  # noqa: E402
from tools.sample_model import local_run_command  # noqa: E402

TEMPLATE = """
import sys
sys.path.insert(0, {root!r})
import pandas as pd
from bench.model_quality import template_rmse
frame = pd.read_csv({data!r})
template_rmse(frame, frame.iloc[:10], seed=0)
"""


def _measure(cmd: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024  # KiB -> MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours, template = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            ours.append(_measure(local_run_command(f"{tmp}/{i}", data=DATA)))
            template.append(_measure([sys.executable, "-c", TEMPLATE.format(root=str(ROOT), data=str(DATA))]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"data: {DATA.name}, {sum(1 for _ in DATA.open()) - 1} rows; {args.repeats} fresh processes each (median)")
    for label, runs in (("local_run (full loop)", ours), ("template training only", template)):
        wall = statistics.median(r[0] for r in runs)
        peak = statistics.median(r[1] for r in runs)
        print(f"{label:<24} wall {wall:6.2f} s   peak RSS {peak:7.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
