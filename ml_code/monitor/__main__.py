"""``python -m ml_code.monitor``: the platform's drift and quality check (see ml_code/monitor/__init__.py).

    python -m ml_code.monitor --baseline DIR --data PATH --output DIR
                              [--ground-truth PATH] [--problem-type T] [--evaluation FILE] [--quality-tolerance X]

Prints one summary line and exits 0 whether or not it found violations (they are data, in the
output files); exits 1 with ``error: <file>: line N: <problem>`` on input it cannot read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml_code.monitor.errors import MonitorInputError
from ml_code.monitor.run import DEFAULT_TOLERANCE, monitor
from ml_code.schema import ProblemType


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_code.monitor",
        description="Check captured data (or a CSV of features) against a registered baseline.",
    )
    parser.add_argument("--baseline", type=Path, required=True, help="directory with statistics.json, constraints.json")
    parser.add_argument("--data", type=Path, required=True, help="capture JSONL file or tree, or a CSV with a header")
    parser.add_argument("--output", type=Path, required=True, help="directory for the result files")
    parser.add_argument("--ground-truth", type=Path, help="ground-truth JSONL file or tree (model quality)")
    parser.add_argument("--problem-type", choices=[p.value for p in ProblemType], help="default: the evaluation's")
    parser.add_argument(
        "--evaluation", type=Path, help="registered evaluation.json (default: BASELINE/evaluation.json)"
    )
    parser.add_argument(
        "--quality-tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"relative metric degradation allowed (default {DEFAULT_TOLERANCE})",
    )
    args = parser.parse_args(argv)
    try:
        report = monitor(
            args.baseline,
            args.data,
            args.output,
            ground_truth=args.ground_truth,
            problem_type=ProblemType(args.problem_type) if args.problem_type else None,
            evaluation_path=args.evaluation,
            tolerance=args.quality_tolerance,
        )
    except MonitorInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
