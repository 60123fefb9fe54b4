"""Data-quality checks against the baseline, with Model Monitor's check types, thresholds and formats.

- ``missing_column_check``: a baseline column is absent from the batch.
- ``extra_column_check``: the batch has a column the baseline does not.
- ``data_type_check``: the share of non-null values of the baseline's type is below
  ``datatype_check_threshold`` (Integral accepts whole numbers, Fractional any number, String anything).
- ``completeness_check``: the share of non-null values fell below the baseline's ``completeness``;
  with the ``Robust`` method, by more than 4 standard errors of the difference of two proportions,
  so that sampling noise is not a violation (a baseline without missing values tolerates none).
- ``categorical_values_check``: the share of values inside the baseline's domain is below
  ``domain_content_threshold``.
- ``baseline_drift_check``: the (robust) L-infinity distance is above ``comparison_threshold``
  (numeric) or ``categorical_comparison_threshold`` (string).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ml_code.baseline import numeric_statistics, string_statistics
from ml_code.monitor.batch import Batch, NumericProfile, StringProfile
from ml_code.monitor.distance import categorical_linf, numeric_linf, robust
from ml_code.monitor.reference import Reference, ReferenceColumn

# Standard errors a completeness drop must exceed under the Robust method (one-sided alpha ~ 3e-5:
# an hourly check of one feature would raise a false alarm about once in four years).
COMPLETENESS_Z = 4.0
_SHOWN_VALUES = 5


@dataclass(frozen=True)
class Violation:
    """One entry of constraint_violations.json."""

    feature_name: str
    constraint_check_type: str
    description: str

    def to_json(self) -> dict[str, str]:
        return {
            "feature_name": self.feature_name,
            "constraint_check_type": self.constraint_check_type,
            "description": self.description,
        }


@dataclass(frozen=True)
class Drift:
    """A drift comparison: the raw L-infinity distance, the one compared (robust or raw) and its threshold."""

    feature_name: str
    linf: float
    distance: float
    threshold: float
    baseline_count: float
    batch_count: int

    @property
    def violated(self) -> bool:
        return self.distance > self.threshold


@dataclass
class DataQualityResult:
    """The batch's statistics, its violations and every drift distance."""

    statistics: dict[str, Any]
    violations: list[Violation] = field(default_factory=list)
    drifts: list[Drift] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """CloudWatch metrics as Model Monitor names them: ``feature_baseline_drift_<feature>``."""
        return {f"feature_baseline_drift_{d.feature_name}": d.distance for d in self.drifts}


def _type_of(profile: NumericProfile | StringProfile) -> str:
    if isinstance(profile, StringProfile) or profile.not_numeric:
        return "String"
    values = profile.sorted_values()
    return "Integral" if values.size and bool((values == values.round()).all()) else "Fractional"


def _statistics(ref: ReferenceColumn, profile: NumericProfile | StringProfile) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": ref.name, "inferred_type": _type_of(profile)}
    if isinstance(profile, StringProfile):
        entry["string_statistics"] = string_statistics(profile.counts, profile.missing)
        return entry
    values = profile.sorted_values()
    common = {"num_present": profile.non_null, "num_missing": profile.missing}
    if values.size:
        entry["numerical_statistics"] = numeric_statistics(values, profile.missing) | {"common": common}
    else:
        entry["numerical_statistics"] = {"common": common}
    return entry


def _percent(share: float) -> str:
    return f"{share * 100:.2f}%"


def _data_type(ref: ReferenceColumn, profile: NumericProfile | StringProfile, threshold: float) -> Violation | None:
    if not isinstance(profile, NumericProfile) or profile.non_null == 0:
        return None  # everything is a String; a column with no value has no type to check
    matching = profile.present - (profile.not_integral if ref.inferred_type == "Integral" else 0)
    share = matching / profile.non_null
    if share >= threshold:
        return None
    return Violation(
        ref.name,
        "data_type_check",
        f"Data type match requirement is not met. Expected data type: {ref.inferred_type}, expected match: "
        f"{_percent(threshold)}. Observed: only {_percent(share)} of {profile.non_null} non-null values are "
        f"{ref.inferred_type}.",
    )


def _completeness(
    ref: ReferenceColumn, profile: NumericProfile | StringProfile, rows: int, robust_method: bool
) -> Violation | None:
    if ref.completeness is None or rows == 0:
        return None
    observed = profile.non_null / rows
    expected = ref.completeness
    tolerance = 0.0
    n = ref.num_present + ref.num_missing
    if robust_method and n > 0:
        tolerance = COMPLETENESS_Z * math.sqrt(expected * (1 - expected) * (1 / n + 1 / rows))
    if expected - observed <= tolerance:
        return None
    return Violation(
        ref.name,
        "completeness_check",
        f"Data completeness requirement is not met. Expected: {_percent(expected)} non-null (the baseline's). "
        f"Observed: {_percent(observed)} of {rows} rows are non-null.",
    )


def _domain(ref: ReferenceColumn, profile: NumericProfile | StringProfile, threshold: float) -> Violation | None:
    if ref.domain is None or not isinstance(profile, StringProfile) or profile.present == 0:
        return None
    unknown = {v: c for v, c in profile.counts.items() if v not in ref.domain}
    share = 1 - sum(unknown.values()) / profile.present
    if share >= threshold:
        return None
    shown = sorted(unknown, key=lambda v: (-unknown[v], v))[:_SHOWN_VALUES]
    return Violation(
        ref.name,
        "categorical_values_check",
        f"Data domain match requirement is not met. Expected: {_percent(threshold)} of values in the baseline's "
        f"domain. Observed: {_percent(share)}; values outside it: {shown}"
        + (f" and {len(unknown) - len(shown)} more" if len(unknown) > len(shown) else "")
        + ".",
    )


def _drift(reference: Reference, ref: ReferenceColumn, profile: NumericProfile | StringProfile) -> Drift | None:
    config = reference.config
    if isinstance(profile, NumericProfile):
        if ref.distribution is None or profile.present == 0:
            return None
        linf = numeric_linf(ref.distribution, profile.sorted_values())
        n, m, threshold = ref.distribution.weight, profile.present, config.comparison_threshold
    else:
        if not ref.categories or profile.present == 0:
            return None
        linf = categorical_linf(ref.categories, profile.counts)
        n, m, threshold = sum(ref.categories.values()), profile.present, config.categorical_comparison_threshold
    distance = robust(linf, n, m) if config.robust else linf
    return Drift(ref.name, linf, distance, threshold, n, m)


def _drift_violation(drift: Drift, method: str) -> Violation:
    return Violation(
        drift.feature_name,
        "baseline_drift_check",
        f"Baseline drift distance: {drift.distance:.6g} exceeds threshold: {drift.threshold:g} "
        f"(L-infinity {drift.linf:.6g}, {method} method, {drift.batch_count} values against the baseline's "
        f"{drift.baseline_count:.0f}).",
    )


def check_data_quality(reference: Reference, batch: Batch) -> DataQualityResult:
    """Profile ``batch`` and evaluate the baseline's constraints on it."""
    config = reference.config
    n_ref = len(reference.columns)
    result = DataQualityResult(statistics={"version": 0.0, "dataset": {"item_count": batch.rows}, "features": []})
    for position, (ref, profile) in enumerate(zip(reference.columns, batch.profiles, strict=True)):
        if profile is None:
            if config.evaluate_constraints:
                result.violations.append(
                    Violation(
                        ref.name,
                        "missing_column_check",
                        f"Column {ref.name!r} (position {position + 1} of the baseline's {n_ref}) is missing: the "
                        f"current dataset has {batch.width} columns.",
                    )
                )
            continue
        result.statistics["features"].append(_statistics(ref, profile))
        drift = _drift(reference, ref, profile) if config.perform_comparison else None
        if drift is not None:
            result.drifts.append(drift)
        if not config.evaluate_constraints:
            continue
        for violation in (
            _data_type(ref, profile, config.datatype_check_threshold),
            _completeness(ref, profile, batch.rows, config.robust),
            _domain(ref, profile, config.domain_content_threshold),
            _drift_violation(drift, config.comparison_method) if drift is not None and drift.violated else None,
        ):
            if violation is not None:
                result.violations.append(violation)
    if config.evaluate_constraints:
        for name in batch.extra_columns:
            result.violations.append(
                Violation(
                    name,
                    "extra_column_check",
                    f"Column {name!r} is not in the baseline: the current dataset has {batch.width} columns, "
                    f"the baseline {n_ref}.",
                )
            )
    return result
