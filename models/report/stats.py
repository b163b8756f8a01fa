"""Confidence intervals over seeds and the paired t-test between variants of the same seed."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided t-interval; ``low``/``high`` are NaN with fewer than 2 values."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Paired:
    """The mean paired difference, its interval, and the paired t-test's two-sided p-value."""

    diff: Interval
    t: float
    p: float


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t confidence interval of ``values`` (independent seeds)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * statistics.stdev(values)
    half /= math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_test(treated: Sequence[float], control: Sequence[float]) -> Paired:
    """Paired t-test of ``treated - control`` (same seed, same labels, same recipe)."""
    if len(treated) != len(control):
        raise ValueError(f"{len(treated)} treated values but {len(control)} controls")
    diffs = [a - b for a, b in zip(treated, control, strict=True)]
    interval = t_interval(diffs)
    n = len(diffs)
    if n < 2:
        return Paired(interval, math.nan, math.nan)
    spread = statistics.stdev(diffs)
    if spread == 0:
        # Identical differences: no noise to test against; zero means no effect at all.
        return Paired(interval, 0.0 if interval.mean == 0 else math.inf, float(interval.mean == 0))
    t = interval.mean / (spread / math.sqrt(n))
    p = 2 * float(scipy_stats.t.sf(abs(t), n - 1))
    return Paired(interval, t, p)
