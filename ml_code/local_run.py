"""Run the whole ML workload on one machine, each step through its SageMaker contract.

    python -m ml_code.local_run --data CSV --target COL --problem-type regression|binary|multiclass --output DIR
    python -m ml_code.local_run --reproduce DIR [--output NEW]

Steps run in order, each as its SageMaker job would: preprocess (Processing), train
(Training), evaluate and baseline (Processing), with the same environment variables and
the same directory layout under DIR/.jobs/ that SageMaker mounts under /opt/ml. Writes:

    DIR/model/                    what the server loads (the contents of model.tar.gz)
    DIR/evaluation.json           test-split metrics, SageMaker's model-quality format
    DIR/predictions.csv           the model's predictions for the test split
    DIR/run.json                  the run's arguments, the input's identity and the code's hash
    DIR/baseline/statistics.json  Model Monitor data-quality baseline
    DIR/baseline/constraints.json
    DIR/leaderboard.json          every candidate's validation scores

``--reproduce DIR`` runs again from DIR/run.json (into NEW, or a temporary directory) and says
whether the result is the same model (``ml_code.lineage``: the same winner, test predictions
and metrics within 1e-9); it says first when the data or the code differ from what DIR
recorded. Exit 0: the same model; 3: a different one; 1: an error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_code import baseline, evaluate, metrics, preprocess, train
from ml_code.lineage import PREDICTIONS_FILE, BuildRecord, compare_builds, describe_inputs, source_digest
from ml_code.schema import ProblemType

RUN_FILE = "run.json"
DIFFERENT = 3
CODE_ROOT = Path(__file__).resolve().parents[1]


class StepFailed(RuntimeError):
    """A step exited non-zero; its error message is attached."""


def _run(name: str, step: Callable[..., int], log_dir: Path, *args: Any, **kwargs: Any) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = step(*args, **kwargs)
    if code != 0:
        # The step's one-line reason; a traceback (an unexpected failure) goes to a log file instead.
        lines = err.getvalue().strip().splitlines()
        reason = next((line for line in reversed(lines) if line.startswith("error: ")), lines[-1] if lines else "")
        detail = ""
        if len(lines) > 1:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / f"{name}.log").write_text(err.getvalue())
            detail = f" (details in {log_dir / f'{name}.log'})"
        raise StepFailed(f"{name} failed: {reason.removeprefix('error: ')}{detail}")
    return out.getvalue()


def run(
    data: Path,
    target: str,
    problem_type: ProblemType,
    output: Path,
    *,
    time_budget_seconds: float = 600.0,
    max_trials: int = 8,
    seed: int = 42,
    metric: str | None = None,
) -> str:
    """Run all four steps; return the summary. Raises StepFailed naming the step and the problem."""
    if not data.is_file():
        raise StepFailed(f"--data {data}: file not found")
    start = time.monotonic()
    jobs = output / ".jobs"
    shutil.rmtree(jobs, ignore_errors=True)

    # Processing job: the input channel is a copy of the data, as S3 would download it.
    pre = jobs / "preprocess"
    (pre / "input" / "data").mkdir(parents=True)
    shutil.copyfile(data, pre / "input" / "data" / data.name)
    _run(
        "preprocess",
        preprocess.main,
        jobs,
        ["--target", target, "--problem-type", problem_type.value, "--seed", str(seed)],
        env={"SM_PROCESSING_ROOT": str(pre)},
    )
    splits = pre / "output"

    # Training job: channels, hyperparameters (strings, as SageMaker passes them), model dir.
    ml_root = jobs / "train"
    config = ml_root / "input" / "config"
    config.mkdir(parents=True)
    hyperparameters = {
        "target": target,
        "problem_type": problem_type.value,
        "time_budget_seconds": str(time_budget_seconds),
        "max_trials": str(max_trials),
        "seed": str(seed),
        **({"metric": metric} if metric else {}),
    }
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    model_dir = output / "model"
    shutil.rmtree(model_dir, ignore_errors=True)
    train_out = _run(
        "train",
        train.main,
        jobs,
        env={
            "SM_ML_ROOT": str(ml_root),
            "SM_CHANNEL_TRAIN": str(splits / "train"),
            "SM_CHANNEL_VALIDATION": str(splits / "validation"),
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(ml_root / "output" / "data"),
        },
    )
    shutil.copyfile(ml_root / "output" / "data" / "leaderboard.json", output / "leaderboard.json")

    # Processing job: evaluate the model on the test split.
    ev = jobs / "evaluate"
    shutil.copytree(model_dir, ev / "model")
    shutil.copytree(splits / "test", ev / "test")
    _run("evaluate", evaluate.main, jobs, env={"SM_PROCESSING_ROOT": str(ev)})
    shutil.copyfile(ev / "evaluation" / "evaluation.json", output / "evaluation.json")
    shutil.copyfile(ev / "evaluation" / PREDICTIONS_FILE, output / PREDICTIONS_FILE)
    lineage = json.loads((splits / "train" / "lineage.json").read_text())
    recorded = {
        "data": str(data.resolve()),
        "target": target,
        "problem_type": problem_type.value,
        "time_budget_seconds": time_budget_seconds,
        "max_trials": max_trials,
        "seed": seed,
        "metric": metric,
        "input_sha256": lineage["input_sha256"],
        "code_sha256": source_digest(CODE_ROOT),
    }
    (output / RUN_FILE).write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")

    # Processing job: data-quality baseline, the model's output first, then the training features.
    bl = jobs / "baseline"
    shutil.copytree(splits / "train", bl / "train")
    shutil.copytree(model_dir, bl / "model")
    _run("baseline", baseline.main, jobs, env={"SM_PROCESSING_ROOT": str(bl)})
    shutil.rmtree(output / "baseline", ignore_errors=True)
    shutil.copytree(bl / "baseline", output / "baseline")

    report = json.loads((output / "evaluation.json").read_text())
    section = report[metrics.REPORT_KEY[problem_type]]
    test = ", ".join(f"{k} {v['value']:.4f}" for k, v in section.items() if isinstance(v, dict) and "value" in v)
    return "\n".join(
        [
            train_out.strip(),
            f"test metrics: {test}",
            f"wrote {model_dir}, {output / 'evaluation.json'}, {output / 'baseline'}",
            f"total {time.monotonic() - start:.1f} s",
        ]
    )


def reproduce(original: Path, output: Path | None = None, log: Callable[[str], None] = print) -> bool:
    """Run again from ``original``'s run.json and compare; returns whether it is the same model.

    Raises:
        StepFailed: ``original`` is not a run's output, or a step failed.
    """
    run_file = original / RUN_FILE
    if not run_file.is_file():
        raise StepFailed(f"--reproduce {original}: {RUN_FILE} not found; is it the output of a local run?")
    recorded = json.loads(run_file.read_text())
    data = Path(recorded["data"])
    if not data.is_file():
        raise StepFailed(f"--reproduce {original}: the data it was built from, {data}, is gone")
    now = describe_inputs([data])["input_sha256"]
    if now != recorded["input_sha256"]:
        log(
            f"the data at {data} is not what {original} was built from "
            f"(input {now[:12]}, then {recorded['input_sha256'][:12]})"
        )
    if source_digest(CODE_ROOT) != recorded["code_sha256"]:
        log(f"the code under {CODE_ROOT / 'ml_code'} has changed since {original} was built")
    with contextlib.ExitStack() as stack:
        target = output or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-reproduce-")))
        summary = run(
            data,
            recorded["target"],
            ProblemType(recorded["problem_type"]),
            target,
            time_budget_seconds=recorded["time_budget_seconds"],
            max_trials=recorded["max_trials"],
            seed=recorded["seed"],
            metric=recorded["metric"],
        )
        log(summary)
        try:
            comparison = compare_builds(BuildRecord.from_dir(original), BuildRecord.from_dir(target))
        except FileNotFoundError as exc:
            raise StepFailed(f"--reproduce {original}: {exc}") from None
    log(comparison.report())
    return comparison.same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run preprocess, train, evaluate and baseline locally.")
    parser.add_argument("--data", type=Path, help="CSV with a header row")
    parser.add_argument("--target", help="target column")
    parser.add_argument("--problem-type", choices=[p.value for p in ProblemType])
    parser.add_argument("--output", type=Path, help="output directory (with --reproduce: where the rerun goes)")
    parser.add_argument("--reproduce", type=Path, metavar="DIR", help="run again from DIR's record and compare")
    parser.add_argument(
        "--time-budget", type=float, default=600.0, help="seconds for the hyperparameter search (as the pipeline)"
    )
    parser.add_argument("--max-trials", type=int, default=8, help="trials per candidate family")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--metric",
        help="the metric to report (for binary, the decision threshold is tuned for it); default accuracy or rmse",
    )
    args = parser.parse_args(argv)
    if args.reproduce:
        try:
            return 0 if reproduce(args.reproduce, args.output) else DIFFERENT
        except StepFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    missing = [f"--{n.replace('_', '-')}" for n in ("data", "target", "problem_type", "output") if not getattr(args, n)]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (or --reproduce DIR)")
    try:
        summary = run(
            args.data,
            args.target,
            ProblemType(args.problem_type),
            args.output,
            time_budget_seconds=args.time_budget,
            max_trials=args.max_trials,
            seed=args.seed,
            metric=args.metric,
        )
    except StepFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
