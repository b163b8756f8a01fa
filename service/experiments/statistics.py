"""Interval estimates and tests for online experiments, on plain numbers.

References (formulas restated in the README, section "Online experiments"):

- Wilson score interval: E. B. Wilson (1927), JASA 22(158).
- Mixture sequential probability ratio test (mSPRT) with a normal mixing distribution
  N(0, tau^2) over the effect, and its always-valid p-value p_n = min(p_{n-1}, 1/Lambda_n):
  R. Johari, L. Pekelis, D. Walsh (2017), "Peeking at A/B tests", KDD; the matching
  confidence sequence: S. Howard, A. Ramdas, J. McAuliffe, J. Sekhon (2021),
  "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist.
- Sample ratio mismatch: Pearson's chi-square test of counts against the configured weights
  (Fabijan et al. 2019, "Diagnosing sample ratio mismatch in online controlled experiments").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from service.experiments.distributions import chi2_sf, norm_ppf, two_sided_p

SRM_THRESHOLD = 0.001
"""A sample-ratio-mismatch p-value below this flags the experiment as untrustworthy."""


def z_for(level: float) -> float:
    """The two-sided critical value of a ``level`` (e.g. 0.95) normal interval."""
    return norm_ppf(0.5 + level / 2.0)


def wilson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) without data."""
    if n == 0:
        return (0.0, 1.0)
    z = z_for(level)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Moments:
    """Running count, mean and sum of squared deviations (Welford), for replaying data."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def remove(self, value: float) -> None:
        """Undo :meth:`add` of ``value`` (a corrected feedback item replaces its old value)."""
        if self.n <= 1:
            self.n, self.mean, self.m2 = 0, 0.0, 0.0
            return
        old_mean = (self.n * self.mean - value) / (self.n - 1)
        self.m2 = max(0.0, self.m2 - (value - old_mean) * (value - self.mean))
        self.mean = old_mean
        self.n -= 1

    @property
    def variance(self) -> float:
        """The sample variance (n - 1 in the denominator); 0 below two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


def mean_interval(m: Moments, level: float = 0.95) -> tuple[float, float] | None:
    """Normal interval for a mean; None below two values."""
    if m.n < 2:
        return None
    half = z_for(level) * math.sqrt(m.variance / m.n)
    return (m.mean - half, m.mean + half)


@dataclass(frozen=True)
class FixedHorizon:
    """A two-sample z test of a difference, valid when looked at once, at a planned size."""

    difference: float
    interval: tuple[float, float]
    p_value: float


def fixed_horizon(difference: float, variance: float, alpha: float) -> FixedHorizon:
    """z test of ``difference`` whose estimate has ``variance``."""
    se = math.sqrt(variance)
    if se == 0.0:
        p = 1.0 if difference == 0.0 else 0.0
        return FixedHorizon(difference, (difference, difference), p)
    half = z_for(1.0 - alpha) * se
    return FixedHorizon(
        difference, (difference - half, difference + half), two_sided_p(difference / se)
    )


def msprt_log_lambda(difference: float, variance: float, tau2: float) -> float:
    """log of the normal-mixture likelihood ratio for H0: effect = 0.

    ``difference`` estimates the effect with variance ``variance`` (V); the effect under the
    alternative is drawn from N(0, tau^2):
    Lambda = sqrt(V / (V + tau^2)) * exp(difference^2 tau^2 / (2 V (V + tau^2))).
    """
    v = variance
    return 0.5 * math.log(v / (v + tau2)) + difference**2 * tau2 / (2.0 * v * (v + tau2))


def cs_half_width(variance: float, tau2: float, alpha: float) -> float:
    """Half-width of the normal-mixture confidence sequence: every effect with Lambda < 1/alpha."""
    v = variance
    return math.sqrt(
        v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((v + tau2) / v))
    )


@dataclass
class Sequential:
    """An always-valid test, updated after every new observation and safe to watch throughout.

    Keeps the running minimum of 1/Lambda (the always-valid p-value) and the running
    intersection of the confidence sequence.
    """

    alpha: float
    tau2: float
    p_value: float = 1.0
    lower: float = -math.inf
    upper: float = math.inf
    looks: int = 0

    def update(self, difference: float, variance: float) -> None:
        if variance <= 0.0 or not math.isfinite(variance):
            return
        self.looks += 1
        log_lambda = msprt_log_lambda(difference, variance, self.tau2)
        self.p_value = min(self.p_value, math.exp(-log_lambda) if log_lambda > -700 else 1.0)
        self.p_value = min(1.0, self.p_value)
        half = cs_half_width(variance, self.tau2, self.alpha)
        self.lower = max(self.lower, difference - half)
        self.upper = min(self.upper, difference + half)

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.looks == 0:
            return None
        return (self.lower, self.upper)


@dataclass(frozen=True)
class SampleRatio:
    """Pearson's chi-square test of assignment counts against the configured weights."""

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float
    mismatch: bool


def sample_ratio(counts: Sequence[int], weights: Sequence[float]) -> SampleRatio:
    """Test ``counts`` per arm against the shares ``weights`` give them."""
    total = sum(counts)
    weight_sum = float(sum(weights))
    expected = tuple(total * w / weight_sum for w in weights)
    if total == 0 or len(counts) < 2:
        return SampleRatio(tuple(counts), expected, 0.0, 1.0, False)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(counts, expected, strict=True))
    p = chi2_sf(chi2, len(counts) - 1)
    return SampleRatio(tuple(counts), expected, chi2, p, p < SRM_THRESHOLD)


@dataclass(frozen=True)
class FeedbackBalance:
    """Pearson's chi-square test that every arm gets feedback on the same share of its
    exposures: a 2 x k table of exposures with and without feedback."""

    feedback: tuple[int, ...]
    exposures: tuple[int, ...]
    rates: tuple[float | None, ...]
    chi2: float
    p_value: float
    mismatch: bool


def feedback_balance(feedback: Sequence[int], exposures: Sequence[int]) -> FeedbackBalance:
    """Test whether the arms' feedback rates differ by more than chance."""
    rates = tuple(f / n if n else None for f, n in zip(feedback, exposures, strict=True))
    with_feedback, total = sum(feedback), sum(exposures)
    columns = [(f, n) for f, n in zip(feedback, exposures, strict=True) if n > 0]
    if len(columns) < 2 or with_feedback == 0 or with_feedback == total:
        return FeedbackBalance(tuple(feedback), tuple(exposures), rates, 0.0, 1.0, False)
    share = with_feedback / total
    chi2 = 0.0
    for f, n in columns:
        for observed, expected in ((f, n * share), (n - f, n * (1.0 - share))):
            chi2 += (observed - expected) ** 2 / expected
    p = chi2_sf(chi2, len(columns) - 1)
    return FeedbackBalance(tuple(feedback), tuple(exposures), rates, chi2, p, p < SRM_THRESHOLD)
