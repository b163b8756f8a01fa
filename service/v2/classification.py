"""The classification extension: an output's top K entries as ``"score:index:label"`` strings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from service.ranking import top_k


def classify(scores: NDArray[np.float32], count: int, labels: Sequence[str]) -> NDArray[np.object_]:
    """Return ``[N, K]`` strings for ``[N, classes]`` scores, best first; K is at most ``classes``."""
    order = top_k(scores, count)
    top = np.take_along_axis(scores, order, axis=1)
    out = np.empty(order.shape, dtype=object)
    for row in range(order.shape[0]):
        for col in range(order.shape[1]):
            index = int(order[row, col])
            # str() of a float32 is its shortest exact form, so float() reads it back unchanged.
            out[row, col] = f"{top[row, col]!s}:{index}:{labels[index]}"
    return out
