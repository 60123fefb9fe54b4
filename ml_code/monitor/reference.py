"""The registered baseline, read back: statistics.json and constraints.json in Model Monitor's formats.

Columns keep the order of statistics.json, which is the order Model Monitor matches captured
columns in (output first, then the features; see ml_code/baseline.py). A numeric column's
distribution is its KLL sketch: items at level L weigh 2**L, as in Model Monitor's own files, so a
baseline that Model Monitor wrote reads the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml_code.monitor.errors import MonitorInputError

NUMERIC_TYPES = frozenset({"Integral", "Fractional"})
KNOWN_TYPES = NUMERIC_TYPES | {"String", "Unknown"}


@dataclass(frozen=True)
class Distribution:
    """A numeric baseline distribution as a step function: the share of weight at or below each value."""

    values: np.ndarray  # sorted, distinct
    cdf: np.ndarray  # same length, non-decreasing, ends at 1.0
    weight: float  # the total weight (the number of values the sketch stands for)


@dataclass(frozen=True)
class ReferenceColumn:
    """One baseline column: its type, completeness, distribution and domain."""

    name: str
    inferred_type: str
    completeness: float | None
    num_present: int
    num_missing: int
    distribution: Distribution | None = None  # numeric columns with a sketch
    categories: dict[str, float] | None = None  # String columns: count per value
    domain: frozenset[str] | None = None  # String columns with a small cardinality

    @property
    def numeric(self) -> bool:
        return self.inferred_type in NUMERIC_TYPES


@dataclass(frozen=True)
class MonitoringConfig:
    """``monitoring_config`` of constraints.json, with Model Monitor's defaults for what it leaves out."""

    evaluate_constraints: bool = True
    datatype_check_threshold: float = 1.0
    domain_content_threshold: float = 1.0
    perform_comparison: bool = True
    comparison_threshold: float = 0.1
    comparison_method: str = "Robust"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: str = "LInfinity"

    @property
    def robust(self) -> bool:
        return self.comparison_method == "Robust"


@dataclass(frozen=True)
class Reference:
    """A baseline: its columns in Model Monitor's positional order and its monitoring configuration."""

    columns: tuple[ReferenceColumn, ...]
    config: MonitoringConfig
    item_count: int

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MonitorInputError(
            f"{path}: file not found (a baseline directory holds statistics.json and constraints.json)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MonitorInputError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("features"), list):
        raise MonitorInputError(f'{path}: expected an object with a "features" list')
    return document


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MonitorInputError(f"{path}: {where} must be a number, got {value!r}")
    return float(value)


def distribution_from_sketch(path: Path, name: str, sketch: Any) -> Distribution | None:
    """The step CDF a KLL sketch describes (level L items weigh 2**L); None for an empty sketch.

    Raises:
        MonitorInputError: the sketch is not a list of lists of numbers.
    """
    levels = sketch.get("data") if isinstance(sketch, dict) else None
    if not isinstance(levels, list) or not all(isinstance(level, list) for level in levels):
        raise MonitorInputError(f"{path}: feature {name!r}: distribution.kll.sketch.data must be a list of lists")
    values: list[float] = []
    weights: list[float] = []
    for level, items in enumerate(levels):
        for item in items:
            values.append(_number(path, f"feature {name!r} sketch item", item))
            weights.append(2.0**level)
    if not values:
        return None
    order = np.argsort(values, kind="stable")
    ordered = np.asarray(values)[order]
    cumulative = np.cumsum(np.asarray(weights)[order])
    # Several items may share a value: the CDF at that value counts them all.
    last = np.r_[ordered[1:] != ordered[:-1], True]
    total = float(cumulative[-1])
    return Distribution(values=ordered[last], cdf=cumulative[last] / total, weight=total)


def _column(path: Path, stat: dict[str, Any], constraint: dict[str, Any] | None) -> ReferenceColumn:
    name = stat.get("name")
    if not isinstance(name, str) or not name:
        raise MonitorInputError(f"{path}: a feature has no name")
    inferred = (constraint or {}).get("inferred_type", stat.get("inferred_type"))
    if inferred not in KNOWN_TYPES:
        raise MonitorInputError(f"{path}: feature {name!r}: unknown inferred_type {inferred!r}")
    completeness = None
    if constraint is not None and "completeness" in constraint:
        completeness = _number(path, f"feature {name!r} completeness", constraint["completeness"])
    section = stat.get("numerical_statistics") if inferred in NUMERIC_TYPES else stat.get("string_statistics")
    common = (section or {}).get("common", {})
    num_present = int(_number(path, f"feature {name!r} num_present", common.get("num_present", 0)))
    num_missing = int(_number(path, f"feature {name!r} num_missing", common.get("num_missing", 0)))
    if inferred in NUMERIC_TYPES:
        kll = ((section or {}).get("distribution") or {}).get("kll")
        distribution = distribution_from_sketch(path, name, kll.get("sketch")) if isinstance(kll, dict) else None
        return ReferenceColumn(name, inferred, completeness, num_present, num_missing, distribution=distribution)
    buckets = (((section or {}).get("distribution") or {}).get("categorical") or {}).get("buckets", [])
    categories = {str(b.get("value")): _number(path, f"feature {name!r} bucket count", b.get("count")) for b in buckets}
    domains = ((constraint or {}).get("string_constraints") or {}).get("domains")
    domain = frozenset(str(v) for v in domains) if isinstance(domains, list) else None
    return ReferenceColumn(
        name, inferred, completeness, num_present, num_missing, categories=categories or None, domain=domain
    )


def _config(path: Path, raw: Any) -> MonitoringConfig:
    if raw is None:
        return MonitoringConfig()
    if not isinstance(raw, dict):
        raise MonitorInputError(f"{path}: monitoring_config must be an object")
    distribution = raw.get("distribution_constraints") or {}
    defaults = MonitoringConfig()
    config = MonitoringConfig(
        evaluate_constraints=raw.get("evaluate_constraints", "Enabled") == "Enabled",
        datatype_check_threshold=_number(
            path, "datatype_check_threshold", raw.get("datatype_check_threshold", defaults.datatype_check_threshold)
        ),
        domain_content_threshold=_number(
            path, "domain_content_threshold", raw.get("domain_content_threshold", defaults.domain_content_threshold)
        ),
        perform_comparison=distribution.get("perform_comparison", "Enabled") == "Enabled",
        comparison_threshold=_number(
            path, "comparison_threshold", distribution.get("comparison_threshold", defaults.comparison_threshold)
        ),
        # AWS's own example once spelt the key "comparion_method"; read either.
        comparison_method=distribution.get(
            "comparison_method", distribution.get("comparion_method", defaults.comparison_method)
        ),
        categorical_comparison_threshold=_number(
            path,
            "categorical_comparison_threshold",
            distribution.get("categorical_comparison_threshold", defaults.categorical_comparison_threshold),
        ),
        categorical_drift_method=distribution.get("categorical_drift_method", defaults.categorical_drift_method),
    )
    if config.comparison_method not in ("Robust", "Simple"):
        raise MonitorInputError(f"{path}: comparison_method must be Robust or Simple, got {config.comparison_method!r}")
    if config.categorical_drift_method != "LInfinity":
        raise MonitorInputError(
            f"{path}: categorical_drift_method {config.categorical_drift_method!r} is not supported by "
            "ml_code.monitor; use LInfinity"
        )
    return config


def load_reference(baseline_dir: Path) -> Reference:
    """Read ``baseline_dir``/statistics.json and constraints.json.

    Raises:
        MonitorInputError: a file is missing or malformed, or the two files disagree on the columns.
    """
    stats_path, constraints_path = baseline_dir / "statistics.json", baseline_dir / "constraints.json"
    statistics, constraints = _load(stats_path), _load(constraints_path)
    by_name = {c.get("name"): c for c in constraints["features"] if isinstance(c, dict)}
    stat_names = [s.get("name") for s in statistics["features"] if isinstance(s, dict)]
    if len(stat_names) != len(statistics["features"]):
        raise MonitorInputError(f'{stats_path}: every entry of "features" must be an object')
    if len(set(stat_names)) != len(stat_names):
        raise MonitorInputError(f"{stats_path}: duplicate feature names")
    unknown = sorted(str(n) for n in set(by_name) - set(stat_names))
    if unknown:
        raise MonitorInputError(f"{constraints_path}: features {unknown} are not in {stats_path.name}")
    if not stat_names:
        raise MonitorInputError(f"{stats_path}: no features")
    columns = tuple(_column(stats_path, s, by_name.get(s["name"])) for s in statistics["features"])
    item_count = int((statistics.get("dataset") or {}).get("item_count", 0))
    return Reference(
        columns=columns, config=_config(constraints_path, constraints.get("monitoring_config")), item_count=item_count
    )
