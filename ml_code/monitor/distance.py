"""Drift distances, computed exactly: the L-infinity distance between two distributions.

Numeric columns: the largest gap between the baseline's cumulative distribution (the step function
its KLL sketch describes) and the batch's empirical one, over every real number. Both are right-
continuous step functions, so the supremum is reached at one of their jump points; evaluating both
at every jump point of either is exact, not an approximation, and uses all the batch's values.

Categorical columns: the largest difference between a value's share in the baseline and in the batch.

Model Monitor's ``Robust`` method (Deequ's robust L-infinity) then subtracts the critical value of
the two-sample Kolmogorov-Smirnov test, ``c * sqrt((n + m) / (n * m))`` with Deequ's c = 1.8
(alpha ~ 0.003), so that small batches' sampling noise is not reported as drift; ``Simple`` keeps
the raw distance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ml_code.monitor.reference import Distribution

# Deequ's c(alpha) for its robust L-infinity (alpha ~ 0.003), which Model Monitor's "Robust" method uses.
ROBUST_C_ALPHA = 1.8


def numeric_linf(baseline: Distribution, ordered: np.ndarray) -> float:
    """sup over x of |F_baseline(x) - F_batch(x)|, with ``ordered`` the batch's present values, sorted.

    Raises:
        ValueError: an empty batch (it has no distribution).
    """
    m = ordered.size
    if m == 0:
        raise ValueError("the batch has no values to compare")
    # Batch jump points: each distinct value, where the batch CDF reaches (index of its last copy + 1) / m.
    last = np.empty(m, dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    last[-1] = True
    points = ordered[last]
    batch_at_points = (np.flatnonzero(last) + 1) / m
    base_at_points = _step(baseline, points)
    gap = float(np.max(np.abs(batch_at_points - base_at_points)))
    # Baseline jump points.
    batch_at_base = np.searchsorted(ordered, baseline.values, side="right") / m
    return max(gap, float(np.max(np.abs(batch_at_base - baseline.cdf))))


def _step(distribution: Distribution, x: np.ndarray) -> np.ndarray:
    """F(x) = share of the baseline's weight at or below x."""
    index = np.searchsorted(distribution.values, x, side="right") - 1
    return np.where(index >= 0, distribution.cdf[np.clip(index, 0, None)], 0.0)


def categorical_linf(baseline: Mapping[str, float], batch: Mapping[str, int]) -> float:
    """max over values of |share in the baseline - share in the batch|, over present values.

    Raises:
        ValueError: either side has no values.
    """
    n, m = float(sum(baseline.values())), float(sum(batch.values()))
    if n <= 0 or m <= 0:
        raise ValueError("both sides need values to compare")
    keys = set(baseline) | set(batch)
    return max(abs(baseline.get(k, 0.0) / n - batch.get(k, 0) / m) for k in keys)


def robust(distance: float, n: float, m: float, c_alpha: float = ROBUST_C_ALPHA) -> float:
    """Deequ's robust L-infinity: the distance less the KS critical value for samples of n and m, floored at 0."""
    return max(0.0, distance - c_alpha * math.sqrt((n + m) / (n * m)))
