from __future__ import annotations

import math

import numpy as np
import pytest
from mlxtend.evaluate import mcnemar
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest

from service.statistics import js_divergence, mcnemar_exact, paired_outcomes


def test_js_divergence_known_values() -> None:
    p = np.array([1.0, 0.0])
    q = np.array([0.5, 0.5])
    # m = (0.75, 0.25); KL(p||m) = log2(4/3); KL(q||m) = (log2(2/3) + log2(2)) / 2
    expected = 0.5 * math.log2(4 / 3) + 0.25 * (math.log2(2 / 3) + 1)
    assert js_divergence(p, q) == pytest.approx(expected)
    assert js_divergence(p, p) == 0.0
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_js_divergence_matches_scipy_row_by_row() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=50).astype(np.float32)
    q = rng.dirichlet(np.ones(10), size=50).astype(np.float32)
    ours = js_divergence(p, q)
    reference = jensenshannon(p, q, axis=1, base=2) ** 2
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ours, js_divergence(q, p))
    assert ((ours >= 0) & (ours <= 1)).all()


def test_js_divergence_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        js_divergence(np.ones((2, 3)), np.ones((2, 4)))


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [(0, 0, 1.0), (5, 0, 2 / 32), (0, 5, 2 / 32), (10, 2, 2 * (1 + 12 + 66) / 4096), (3, 3, 1.0)],
)
def test_mcnemar_exact_by_hand(b: int, c: int, expected: float) -> None:
    result = mcnemar_exact(b, c)
    assert result.p_value == pytest.approx(expected)
    assert (result.only_a_correct, result.only_b_correct) == (b, c)


@pytest.mark.parametrize(("b", "c"), [(1, 0), (7, 3), (25, 10), (40, 41), (120, 80)])
def test_mcnemar_exact_matches_scipy_and_mlxtend(b: int, c: int) -> None:
    ours = mcnemar_exact(b, c).p_value
    assert ours == pytest.approx(binomtest(min(b, c), b + c, 0.5).pvalue, rel=1e-9)
    # mlxtend's table: [[both right, only A right], [only B right, both wrong]]
    _, mlx_p = mcnemar(np.array([[50, b], [c, 9]]), exact=True)
    assert ours == pytest.approx(mlx_p, rel=1e-9)


def test_mcnemar_exact_large_counts_stay_finite() -> None:
    assert 0.0 < mcnemar_exact(3000, 2800).p_value < 0.01
    assert mcnemar_exact(3000, 3000).p_value == 1.0
    with pytest.raises(ValueError, match="non-negative"):
        mcnemar_exact(-1, 2)


def test_paired_outcomes() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5])
    a = np.array([0, 1, 2, 3, 9, 9])  # 4 right
    b = np.array([0, 9, 9, 3, 4, 9])  # 3 right
    acc_a, acc_b, test = paired_outcomes(labels, a, b)
    assert (acc_a, acc_b) == (4 / 6, 3 / 6)
    assert (test.only_a_correct, test.only_b_correct) == (2, 1)
    assert test.p_value == pytest.approx(1.0)
