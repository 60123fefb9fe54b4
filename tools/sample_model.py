"""How demos and benchmarks train on the sample data: ``python -m ml_code.local_run`` as a user runs it.

One command line for all of them (Abalone, regression on ``rings``), so that a benchmark's model is
the one ``make demo`` trains and serves.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "abalone.csv"


def local_run_command(output: Path | str, *, data: Path = SAMPLE, extra: Sequence[str] = ()) -> list[str]:
    """The command that trains on ``data`` (the sample by default) into ``output``; run it with cwd=ROOT."""
    return [
        sys.executable, "-m", "ml_code.local_run", "--data", str(data), "--target", "rings",
        "--problem-type", "regression", "--output", str(output), *extra,
    ]  # fmt: skip
