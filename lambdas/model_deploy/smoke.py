"""The smoke test: rows of the version's registered test split, sent to the stage's endpoint.

It passes when every answer is 200, parses, has the right count and type (a finite number for a
regression, one of the test split's labels for a classifier), and the p95 latency of one-row
requests is under the stage's threshold. Rows are sent one per request (latency and error rate as
callers see them) and once all together (the count of a multi-record answer).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from model_deploy.stage import Answer

MAX_TEST_BYTES = 5 * 1024 * 1024  # read at most this much of the test split: the smoke test needs few rows


class SmokeTestFailed(RuntimeError):
    """The endpoint answered wrongly or slowly; the message lists what failed."""


@dataclass(frozen=True)
class SampleRows:
    """Feature rows (CSV lines without header or target) and the labels the target takes."""

    rows: list[str]
    labels: frozenset[str]


def sample_rows(text: str, target: str, count: int) -> SampleRows:
    """The first ``count`` rows of a test split, without its header and target column.

    Raises:
        SmokeTestFailed: no header, no target column, or no rows.
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise SmokeTestFailed("the registered test data is empty")
    if target not in header:
        raise SmokeTestFailed(f"the registered test data has no target column {target!r} (columns: {header})")
    index = header.index(target)
    rows, labels = [], set()
    for record in reader:
        if len(record) != len(header):
            continue  # a line cut off by the read limit, or malformed: not a row to test with
        labels.add(record[index])
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(record[:index] + record[index + 1 :])
        rows.append(out.getvalue())
        if len(rows) == count:
            break
    if not rows:
        raise SmokeTestFailed("the registered test data holds no complete row")
    return SampleRows(rows, frozenset(labels))


def _same_label(answer: str, labels: frozenset[str]) -> bool:
    if answer in labels:
        return True
    try:
        value = float(answer)
    except ValueError:
        return False
    return any(_float(label) == value for label in labels)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class SmokeResult:
    """What the smoke test saw."""

    requests: int = 0
    errors: int = 0
    p95_ms: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.problems[:5])
        return f"{self.requests} requests, {self.errors} errors, p95 {self.p95_ms:.0f} ms: {verdict}"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def run(invoke: Callable[[str], Answer], data: SampleRows, *, problem_type: str, p95_ms: float) -> SmokeResult:
    """Send the rows one by one, then all at once, and judge the answers."""
    result = SmokeResult()
    latencies: list[float] = []

    def judge(answer: Answer, expected: int, what: str) -> None:
        result.requests += 1
        if answer.status != 200:
            result.errors += 1
            result.problems.append(f"{what}: HTTP {answer.status} {answer.body[:200]}")
            return
        values = [line.strip() for line in answer.body.strip().splitlines()]
        if len(values) != expected:
            result.problems.append(f"{what}: {len(values)} answers for {expected} rows")
            return
        for value in values:
            if problem_type == "regression":
                number = _float(value)
                if number is None or not math.isfinite(number):
                    result.problems.append(f"{what}: {value[:50]!r} is not a finite number")
                    return
            elif not _same_label(value, data.labels):
                result.problems.append(f"{what}: {value[:50]!r} is none of the labels {sorted(data.labels)[:10]}")
                return

    for number, row in enumerate(data.rows, 1):
        answer = invoke(row)
        latencies.append(answer.latency_ms)
        judge(answer, 1, f"row {number}")
    judge(invoke("\n".join(data.rows)), len(data.rows), f"all {len(data.rows)} rows at once")
    result.p95_ms = _p95(latencies)
    if result.p95_ms > p95_ms:
        result.problems.append(f"p95 latency {result.p95_ms:.0f} ms is above {p95_ms:g} ms")
    return result
