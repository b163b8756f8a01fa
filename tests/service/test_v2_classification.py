"""The classification extension's ``"score:index:label"`` strings."""

from __future__ import annotations

import numpy as np

from service.v2.classification import classify


def test_top_k_strings_best_first_with_labels() -> None:
    scores = np.array([[0.1, 0.6, 0.3], [0.7, 0.05, 0.25]], dtype=np.float32)
    out = classify(scores, 2, ["zero", "one", "two"])
    assert out.shape == (2, 2)
    assert out.tolist() == [["0.6:1:one", "0.3:2:two"], ["0.7:0:zero", "0.25:2:two"]]


def test_scores_read_back_exactly_as_float32() -> None:
    scores = np.random.default_rng(3).random((4, 10), dtype=np.float32)
    out = classify(scores, 10, [str(i) for i in range(10)])
    for row, strings in zip(scores, out, strict=True):
        for text in strings:
            score, index, label = text.split(":")
            assert np.float32(float(score)) == row[int(index)]
            assert label == index


def test_ties_keep_index_order_and_k_is_clamped_to_the_classes() -> None:
    scores = np.array([[0.25, 0.25, 0.5]], dtype=np.float32)
    out = classify(scores, 99, ["a", "b", "c"])
    assert out.tolist() == [["0.5:2:c", "0.25:0:a", "0.25:1:b"]]
