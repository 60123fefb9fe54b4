"""One monitoring run: read the baseline and the batch, check, and write Model Monitor's files.

Writes into the output directory:

    statistics.json                         the batch's data statistics (Model Monitor's statistics format)
    constraint_violations.json              data-quality violations ({"violations": [...]}, empty when clean)
    model_quality/statistics.json           with ground truth: the metrics on the joined rows
    model_quality/constraint_violations.json
    metrics.json                            the CloudWatch metrics Model Monitor would emit:
                                            feature_baseline_drift_<feature>, and the model-quality metrics
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_code.monitor.batch import Batch, read_batch
from ml_code.monitor.data_quality import DataQualityResult, check_data_quality
from ml_code.monitor.errors import MonitorInputError
from ml_code.monitor.model_quality import (
    Evaluation,
    ModelQualityResult,
    check_model_quality,
    load_evaluation,
    read_ground_truth,
)
from ml_code.monitor.reference import Reference, load_reference
from ml_code.schema import ProblemType

EVALUATION_FILE = "evaluation.json"
DEFAULT_TOLERANCE = 0.1


@dataclass
class MonitorReport:
    """The outcome of a run."""

    batch: Batch
    data_quality: DataQualityResult
    model_quality: ModelQualityResult | None

    @property
    def violation_count(self) -> int:
        quality = len(self.model_quality.violations) if self.model_quality else 0
        return len(self.data_quality.violations) + quality

    def summary(self) -> str:
        """One line: what was read, what was violated, by check and column."""
        by_check: dict[str, list[str]] = {}
        for violation in self.data_quality.violations:
            by_check.setdefault(violation.constraint_check_type, []).append(violation.feature_name)
        read = f"{self.batch.rows} rows" + (f" ({self.batch.records} records)" if self.batch.records else "")
        data = "; ".join(f"{check}: {', '.join(names)}" for check, names in sorted(by_check.items()))
        parts = [f"monitor: {read}, {len(self.batch.profiles)} baseline columns"]
        parts.append(f"data quality: {len(self.data_quality.violations)} violations" + (f" ({data})" if data else ""))
        if self.model_quality is not None:
            mq = self.model_quality
            names = ", ".join(v.metric_name for v in mq.violations)
            parts.append(
                f"model quality: {mq.matched_rows} labelled rows, {len(mq.violations)} violations"
                + (f" ({names})" if names else "")
            )
        return "; ".join(parts)


def _write(path: Path, document: Any, *, compact: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, separators=(",", ":")) if compact else json.dumps(document, indent=2)
    path.write_text(text + "\n", encoding="utf-8")


def _evaluation(baseline_dir: Path, evaluation_path: Path | None) -> Evaluation | None:
    if evaluation_path is not None:
        return load_evaluation(evaluation_path)
    default = baseline_dir / EVALUATION_FILE
    return load_evaluation(default) if default.is_file() else None


def monitor(
    baseline_dir: Path,
    data: Path,
    output: Path,
    *,
    ground_truth: Path | None = None,
    problem_type: ProblemType | None = None,
    evaluation_path: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    reference: Reference | None = None,
) -> MonitorReport:
    """Check ``data`` against the baseline in ``baseline_dir``; write the results into ``output``.

    Args:
        baseline_dir: statistics.json and constraints.json (and evaluation.json, for model quality).
        data: captured records (a JSONL file or a capture tree), or a CSV of features with a header.
        output: where the result files go.
        ground_truth: ground-truth JSONL (a file or a tree), to score the captured predictions.
        problem_type: regression, binary or multiclass; by default the registered evaluation's.
        evaluation_path: the registered evaluation, if not ``baseline_dir``/evaluation.json.
        tolerance: the relative degradation of a model-quality metric allowed before it is a violation.
        reference: an already loaded baseline (the benchmark loads it once).

    Raises:
        MonitorInputError: any input that cannot be read, named with its file (and line).
    """
    if not 0 <= tolerance < 1:
        raise MonitorInputError(f"the quality tolerance must be in [0, 1), got {tolerance}")
    reference = reference or load_reference(baseline_dir)
    evaluation = _evaluation(baseline_dir, evaluation_path) if ground_truth is not None else None
    labels = read_ground_truth(ground_truth) if ground_truth is not None else None
    batch = read_batch(data, reference, keep_predictions=ground_truth is not None)
    if batch.rows == 0:
        raise MonitorInputError(f"{data}: no rows to check")
    data_quality = check_data_quality(reference, batch)
    model_quality = None
    if labels is not None:
        problem = problem_type or (evaluation.problem_type if evaluation else None)
        if problem is None:
            raise MonitorInputError(
                f"{baseline_dir}: no {EVALUATION_FILE} to take the problem type from; give --problem-type"
            )
        if evaluation is not None and evaluation.problem_type is not problem:
            raise MonitorInputError(
                f"--problem-type {problem.value} differs from the registered evaluation's "
                f"{evaluation.problem_type.value}"
            )
        model_quality = check_model_quality(batch.predictions, labels, problem, evaluation, tolerance)
    # Compact: the sketches hold thousands of numbers, which indenting would put one per line.
    _write(output / "statistics.json", data_quality.statistics, compact=True)
    _write(output / "constraint_violations.json", {"violations": [v.to_json() for v in data_quality.violations]})
    metrics = data_quality.metrics()
    if model_quality is not None:
        _write(output / "model_quality" / "statistics.json", model_quality.statistics())
        _write(
            output / "model_quality" / "constraint_violations.json",
            {"violations": [v.to_json() for v in model_quality.violations]},
        )
        metrics |= model_quality.metrics()
    _write(output / "metrics.json", metrics)
    return MonitorReport(batch=batch, data_quality=data_quality, model_quality=model_quality)
