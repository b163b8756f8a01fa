"""A/B statistics: how far two probability vectors are apart, and whether one variant wins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


def js_divergence(p: NDArray[np.floating], q: NDArray[np.floating]) -> NDArray[np.float64]:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint), row by row.

    ``p`` and ``q`` are ``[N, K]`` (or ``[K]``) probability vectors; each row is
    renormalised so float32 rounding cannot push the result outside ``[0, 1]``.
    """
    p64 = np.asarray(p, dtype=np.float64)
    q64 = np.asarray(q, dtype=np.float64)
    if p64.shape != q64.shape:
        raise ValueError(f"shapes differ: {p64.shape} vs {q64.shape}")
    p64 = p64 / p64.sum(axis=-1, keepdims=True)
    q64 = q64 / q64.sum(axis=-1, keepdims=True)
    m = 0.5 * (p64 + q64)
    divergence = 0.5 * (_kl_bits(p64, m) + _kl_bits(q64, m))
    return np.clip(divergence, 0.0, 1.0)


def _kl_bits(p: NDArray[np.float64], m: NDArray[np.float64]) -> NDArray[np.float64]:
    # 0 * log(0 / m) is 0; m > 0 wherever p > 0, since m = (p + q) / 2.
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p * np.log2(p / m)
    terms[p == 0] = 0.0
    result: NDArray[np.float64] = terms.sum(axis=-1)
    return result


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test on paired right/wrong outcomes of two classifiers."""

    only_a_correct: int
    """Images the first variant got right and the second got wrong."""
    only_b_correct: int
    """Images the second variant got right and the first got wrong."""
    p_value: float
    """Two-sided exact binomial p-value of ``only_a_correct`` among the discordant pairs."""


def mcnemar_exact(only_a_correct: int, only_b_correct: int) -> McNemarResult:
    """Exact two-sided McNemar test: under H0 each discordant pair is a fair coin flip.

    p = min(1, 2 * P[X <= min(b, c)]) with X ~ Binomial(b + c, 1/2); with no
    discordant pairs there is no evidence either way and p = 1.
    """
    if only_a_correct < 0 or only_b_correct < 0:
        raise ValueError("counts must be non-negative")
    n = only_a_correct + only_b_correct
    k = min(only_a_correct, only_b_correct)
    if n == 0:
        p_value = 1.0
    else:
        # Exact integer tail, divided once: correct to the last bit for any n. Each
        # C(n, i + 1) comes from C(n, i), so the sum costs k big-integer steps, not k^2.
        term = tail = 1
        for i in range(k):
            term = term * (n - i) // (i + 1)
            tail += term
        p_value = min(1.0, (2 * tail) / (1 << n))
    return McNemarResult(only_a_correct, only_b_correct, p_value)


def paired_outcomes(
    labels: NDArray[np.integer], pred_a: NDArray[np.integer], pred_b: NDArray[np.integer]
) -> tuple[float, float, McNemarResult]:
    """Accuracy of each variant and McNemar's test on the same labelled images."""
    right_a = pred_a == labels
    right_b = pred_b == labels
    only_a = int(np.count_nonzero(right_a & ~right_b))
    only_b = int(np.count_nonzero(right_b & ~right_a))
    return float(right_a.mean()), float(right_b.mean()), mcnemar_exact(only_a, only_b)
