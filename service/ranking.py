"""Rank classes by probability: the one top-K that v1 answers and V2's classification use."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def top_k(scores: NDArray[np.float32], k: int) -> NDArray[np.intp]:
    """The ``[N, min(k, classes)]`` class indices of each row, best first.

    A stable sort of the negated scores keeps equal scores in index order.
    """
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]
