"""Per-row prediction cost, in-process: scikit-learn's generic path against the compiled model.

    .venv/bin/python bench/per_row_timings.py [--model-dir DIR] [--repeats 300]

The figures the README quotes for one row ("scikit-learn's generic path ~N ms for one row of
the forest; compiled M ms"): the fitted pipeline's own ``predict`` on a one-row DataFrame,
each member of an ensemble alone, and the same through the compiled model (parse, transform,
trees, answer), with n_jobs=1 everywhere. Trains on the sample data unless --model-dir is given.
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.sample_model import local_run_command  # noqa: E402

ROW = "M,0.455,0.365,0.095,0.514,0.2245,0.101,0.15"


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            subprocess.run(local_run_command(tmp), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            model_dir = Path(tmp) / "model"
        import pandas as pd

        from ml_code.serving.compiled import CompiledModel, _compile_estimator
        from ml_code.serving.inference import input_fn, model_fn, output_fn, predict_fn

        model = model_fn(model_dir)  # sets n_jobs=1 on the estimators it compiles
        pipeline = model.artifact.pipeline
        names = model.schema.feature_names
        frame = pd.DataFrame([ROW.split(",")], columns=names)
        for column in names[1:]:
            frame[column] = frame[column].astype(float)
        body = (ROW + "\n").encode()
        table = input_fn(body, "text/csv", model).table
        x = model.compiled.transform.transform(table)
        estimator = pipeline.named_steps["model"]
        members = (
            list(zip(estimator.named_estimators_, estimator.estimators_, strict=True))
            if hasattr(estimator, "estimators_") and hasattr(estimator, "named_estimators_")
            else [(type(estimator).__name__, estimator)]
        )

        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"one row, median of {args.repeats} calls, n_jobs=1\n")
        print(f"  {'':<52}{'scikit-learn':>14}{'compiled':>12}")
        sk = _median_ms(lambda: pipeline.predict(frame), args.repeats)
        ours = _median_ms(
            lambda: output_fn(predict_fn(input_fn(body, "text/csv", model), model), "text/csv"), args.repeats
        )
        label = f"whole model ({type(estimator).__name__}), from the request row"
        print(f"  {label:<52}{sk:>11.3f} ms{ours:>9.3f} ms")
        transformed = pipeline.named_steps["preprocess"].transform(frame)
        for name, member in members:
            size = f", {len(member.estimators_)} trees" if hasattr(member, "estimators_") else ""
            size = f", {member.get_booster().num_boosted_rounds()} trees" if hasattr(member, "get_booster") else size
            compiled_member = _compile_estimator(member)
            sk_member = _median_ms(lambda m=member: m.predict(transformed), args.repeats)
            ours_member = _median_ms(lambda c=compiled_member: c(x), args.repeats)
            label = f"  member {name} ({type(member).__name__}{size})"
            print(f"{label:<54}{sk_member:>11.3f} ms{ours_member:>9.3f} ms")
        assert isinstance(model.compiled, CompiledModel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
