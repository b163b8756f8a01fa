"""The classification extension: an output's top K entries as ``"score:index:label"`` strings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def classify(scores: NDArray[np.float32], count: int, labels: Sequence[str]) -> NDArray[np.object_]:
    """Return ``[N, K]`` strings for ``[N, classes]`` scores, best first; K is at most ``classes``."""
    k = min(count, scores.shape[1])
    # A stable sort of the negated scores keeps equal scores in index order.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, axis=1)
    out = np.empty(order.shape, dtype=object)
    for row in range(order.shape[0]):
        for col in range(k):
            index = int(order[row, col])
            # str() of a float32 is its shortest exact form, so float() reads it back unchanged.
            out[row, col] = f"{top[row, col]!s}:{index}:{labels[index]}"
    return out
