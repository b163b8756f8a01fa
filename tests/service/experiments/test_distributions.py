from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from service.experiments.distributions import (
    chi2_sf,
    gamma_q,
    norm_cdf,
    norm_ppf,
    norm_sf,
    two_sided_p,
)


@pytest.mark.parametrize("z", [-38.0, -8.5, -3.0, -1.0, -1e-6, 0.0, 0.5, 1.96, 4.0, 9.0, 37.0])
def test_normal_cdf_and_sf_match_scipy(z: float) -> None:
    assert norm_cdf(z) == pytest.approx(stats.norm.cdf(z), rel=1e-12, abs=1e-300)
    assert norm_sf(z) == pytest.approx(stats.norm.sf(z), rel=1e-12, abs=1e-300)
    assert two_sided_p(z) == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12, abs=1e-300)


def test_normal_ppf_matches_scipy_across_the_range() -> None:
    ps = np.concatenate(
        [np.logspace(-300, -1, 60), np.linspace(0.01, 0.99, 99), 1 - np.logspace(-15, -2, 30)]
    )
    for p in ps:
        assert norm_ppf(float(p)) == pytest.approx(stats.norm.ppf(p), rel=1e-12, abs=1e-12), p


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_normal_ppf_refuses_p_outside_the_open_interval(p: float) -> None:
    with pytest.raises(ValueError, match="0 < p < 1"):
        norm_ppf(p)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 31, 100, 1000])
def test_chi_square_sf_matches_scipy(df: int) -> None:
    for x in [0.0, 1e-8, 0.01, 0.5, 1.0, df / 2, df - 1, df, df + 1, 2 * df, 5 * df + 40, 900.0]:
        expected = stats.chi2.sf(x, df)
        assert chi2_sf(x, df) == pytest.approx(expected, rel=1e-10, abs=1e-300), (x, df)


def test_regularized_gamma_matches_scipy_on_random_arguments() -> None:
    rng = np.random.default_rng(0)
    from scipy import special

    for a, x in zip(rng.uniform(0.05, 300, 300), rng.uniform(0, 400, 300), strict=True):
        assert gamma_q(float(a), float(x)) == pytest.approx(
            special.gammaincc(a, x), rel=1e-9, abs=1e-300
        ), (a, x)


def test_chi_square_sf_is_uniform_under_simulation() -> None:
    # The p-values of simulated chi-square(3) statistics are uniform: a wrong tail would skew them.
    rng = np.random.default_rng(1)
    p = np.array([chi2_sf(float(x), 3) for x in rng.chisquare(3, 20_000)])
    for q in (0.01, 0.05, 0.5):
        share = float((p < q).mean())
        assert abs(share - q) < 4 * math.sqrt(q * (1 - q) / p.size), (q, share)


@pytest.mark.parametrize(("a", "x"), [(0.0, 1.0), (-1.0, 1.0)])
def test_gamma_q_refuses_a_non_positive_shape(a: float, x: float) -> None:
    with pytest.raises(ValueError, match="a > 0"):
        gamma_q(a, x)
