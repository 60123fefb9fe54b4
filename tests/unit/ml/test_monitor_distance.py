"""Exact drift distances: against a brute-force supremum, on sketches, and the robust correction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_code.baseline import numeric_statistics
from ml_code.monitor.distance import categorical_linf, numeric_linf, robust
from ml_code.monitor.reference import Distribution, distribution_from_sketch


def _exact(values: np.ndarray) -> Distribution:
    ordered = np.sort(values)
    sketch = {"data": [[float(v) for v in ordered]]}
    distribution = distribution_from_sketch(Path("statistics.json"), "x", sketch)
    assert distribution is not None
    return distribution


def _brute_force(a: np.ndarray, b: np.ndarray) -> float:
    """sup |F_a - F_b| evaluated on a dense grid that holds every value and points between them."""
    points = np.unique(np.concatenate([a, b]))
    between = (points[:-1] + points[1:]) / 2 if points.size > 1 else np.empty(0)
    grid = np.concatenate([points, between, [points[0] - 1, points[-1] + 1]])
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


values = st.lists(st.integers(-20, 20).map(lambda v: v / 4), min_size=1, max_size=60)


@given(values, values)
@settings(max_examples=300, deadline=None)
def test_numeric_linf_equals_the_supremum_over_every_point(a: list[float], b: list[float]) -> None:
    # Values on a coarse grid: many ties, the case where evaluating at the wrong side of a jump goes wrong.
    left, right = np.array(a), np.array(b)
    assert numeric_linf(_exact(left), np.sort(right)) == pytest.approx(_brute_force(left, right), abs=1e-12)


@given(values)
@settings(max_examples=100, deadline=None)
def test_the_distance_of_data_to_itself_is_zero(a: list[float]) -> None:
    assert numeric_linf(_exact(np.array(a)), np.sort(np.array(a))) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_ranges_are_at_distance_one() -> None:
    assert numeric_linf(_exact(np.arange(10.0)), np.arange(100.0, 110.0)) == 1.0


@pytest.mark.parametrize("n", [10, 2048, 5000, 100_003])
def test_the_baseline_sketch_stays_within_half_a_block_of_the_data(n: int) -> None:
    # The registered baseline keeps one value per block of 2**L: its CDF differs from the data's by at
    # most 2**L/n anywhere (under 2/k), ties included.
    rng = np.random.default_rng(n)
    data = np.sort(np.round(rng.lognormal(0, 1, n), 1))  # rounded: heavy ties
    sketch = numeric_statistics(data, 0)["distribution"]["kll"]["sketch"]
    distribution = distribution_from_sketch(Path("s.json"), "x", sketch)
    assert distribution is not None
    level = len(sketch["data"]) - 1
    bound = 2**level / n
    assert numeric_linf(distribution, data) <= bound + 1e-12
    assert abs(distribution.weight - n) <= 2**level


def test_categorical_linf_is_the_largest_share_difference() -> None:
    assert categorical_linf({"a": 50.0, "b": 30.0, "c": 20.0}, {"a": 35, "b": 45, "c": 20}) == pytest.approx(0.15)
    assert categorical_linf({"a": 1.0}, {"b": 3}) == 1.0  # a value only one side has counts fully
    with pytest.raises(ValueError):
        categorical_linf({"a": 1.0}, {})


def test_robust_subtracts_the_ks_critical_value_and_floors_at_zero() -> None:
    assert robust(0.5, 100, 100) == pytest.approx(0.5 - 1.8 * np.sqrt(200 / 10_000))
    assert robust(0.05, 100, 100) == 0.0
    # With many values on both sides the correction vanishes.
    assert robust(0.2, 1e9, 1e9) == pytest.approx(0.2, abs=1e-3)


@given(st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from([50, 500, 20_000]))
@settings(max_examples=40, deadline=None)
def test_clean_batches_from_the_baseline_distribution_never_pass_the_threshold(seed: int, m: int) -> None:
    # Robust distance of a sample against the baseline it was drawn from: sampling noise only.
    rng = np.random.default_rng(seed)
    baseline = _exact(rng.normal(size=5_000))
    batch = np.sort(rng.normal(size=m))
    assert robust(numeric_linf(baseline, batch), baseline.weight, m) <= 0.1
