from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from service.experiments.statistics import (
    Moments,
    Sequential,
    cs_half_width,
    feedback_balance,
    fixed_horizon,
    mean_interval,
    msprt_log_lambda,
    sample_ratio,
    wilson,
)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (7, 20), (512, 1000), (1, 3)])
def test_wilson_interval_matches_its_closed_form_from_scipy(k: int, n: int) -> None:
    z = stats.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low, high = wilson(k, n)
    assert low == pytest.approx(max(0.0, centre - half), abs=1e-12)
    assert high == pytest.approx(min(1.0, centre + half), abs=1e-12)


def test_wilson_interval_covers_the_true_proportion_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(2)
    hits = 0
    for k in rng.binomial(60, 0.3, 4000):
        low, high = wilson(int(k), 60)
        hits += low <= 0.3 <= high
    assert 0.93 < hits / 4000 < 0.97


def test_moments_match_numpy() -> None:
    values = np.random.default_rng(3).normal(2.0, 3.0, 101)
    m = Moments()
    for v in values:
        m.add(float(v))
    assert m.n == 101
    assert m.mean == pytest.approx(values.mean())
    assert m.variance == pytest.approx(values.var(ddof=1))
    low, high = mean_interval(m) or (0.0, 0.0)
    half = stats.norm.ppf(0.975) * values.std(ddof=1) / math.sqrt(101)
    assert (low, high) == pytest.approx((values.mean() - half, values.mean() + half))


def test_fixed_horizon_test_is_scipys_two_sided_z_test() -> None:
    result = fixed_horizon(0.03, 0.0001, 0.05)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(3.0))
    assert result.interval == pytest.approx((0.03 - 1.959964 * 0.01, 0.03 + 1.959964 * 0.01))


def test_sample_ratio_is_pearsons_chi_square_from_scipy() -> None:
    counts, weights = [480, 520, 1100], [1, 1, 2]
    expected = np.array(weights) / sum(weights) * sum(counts)
    reference = stats.chisquare(counts, expected)
    result = sample_ratio(counts, weights)
    assert result.chi2 == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert not result.mismatch
    assert sample_ratio([600, 400], [1, 1]).mismatch  # chi2 = 40, p ~ 2.5e-10


def test_feedback_balance_is_scipys_chi_square_test_of_independence() -> None:
    feedback, exposures = [300, 250, 520], [1000, 1000, 2000]
    table = np.array([feedback, np.subtract(exposures, feedback)])
    reference = stats.chi2_contingency(table, correction=False)
    result = feedback_balance(feedback, exposures)
    assert result.chi2 == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.rates == (0.3, 0.25, 0.26)
    assert not result.mismatch
    assert feedback_balance([300, 200], [1000, 1000]).mismatch  # p ~ 4e-7


def test_feedback_balance_without_feedback_or_traffic_flags_nothing() -> None:
    assert not feedback_balance([0, 0], [100, 100]).mismatch
    assert feedback_balance([5, 0], [10, 0]).rates == (0.5, None)
    assert feedback_balance([5, 0], [10, 0]).p_value == 1.0


def test_the_confidence_sequence_is_where_lambda_stays_below_one_over_alpha() -> None:
    v, tau2, alpha = 0.0004, 0.0025, 0.05
    half = cs_half_width(v, tau2, alpha)
    assert msprt_log_lambda(half, v, tau2) == pytest.approx(math.log(1 / alpha))
    assert msprt_log_lambda(0.9 * half, v, tau2) < math.log(1 / alpha)


def _peeking_rejections(rng: np.random.Generator, effect: float, runs: int) -> tuple[int, int]:
    """A/A-or-A/B runs of 2,000 Bernoulli pairs watched after every 20: (sequential, fixed) hits."""
    sequential_hits = fixed_hits = 0
    for _ in range(runs):
        a = rng.random(2000) < 0.8
        b = rng.random(2000) < 0.8 + effect
        test = Sequential(alpha=0.05, tau2=0.05**2)
        fixed_rejected = False
        for n in range(20, 2001, 20):
            ma, mb = a[:n].mean(), b[:n].mean()
            v = ma * (1 - ma) / (n - 1) + mb * (1 - mb) / (n - 1)
            if v <= 0:
                continue
            test.update(float(mb - ma), float(v))
            fixed_rejected |= fixed_horizon(float(mb - ma), float(v), 0.05).p_value < 0.05
        sequential_hits += test.p_value < 0.05
        fixed_hits += fixed_rejected
    return sequential_hits, fixed_hits


def test_watching_the_sequential_test_keeps_false_positives_under_alpha() -> None:
    sequential, fixed = _peeking_rejections(np.random.default_rng(4), 0.0, 300)
    # Upper end of the binomial 99% interval stays at or under 5% for the sequential test...
    assert stats.binomtest(sequential, 300).proportion_ci(0.99).low <= 0.05
    assert sequential / 300 <= 0.05
    # ...while a fixed-horizon test looked at just as often is fooled far more often.
    assert stats.binomtest(fixed, 300).proportion_ci(0.99).low > 0.05


def test_the_sequential_test_finds_a_real_difference() -> None:
    sequential, _ = _peeking_rejections(np.random.default_rng(5), 0.05, 50)
    assert sequential >= 45
