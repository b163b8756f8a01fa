from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service import inference
from service.errors import ValidationFailed
from service.runtime import ModelStore
from service.schemas import ClassifyResponse, CompareResponse, EmbedResponse
from service.statistics import js_divergence, mcnemar_exact
from tests.images import mnist


@pytest.fixture
def store(repository: Path) -> ModelStore:
    return ModelStore.load(repository)


def _batch(n: int) -> np.ndarray:
    return mnist()[0][:n, np.newaxis].copy()


def test_classify_ranks_classes_by_probability(store: ModelStore) -> None:
    variant = store.variant("tiny", "pretrained")
    images = _batch(4)
    result = inference.classify(variant, images, top_k=3)
    ClassifyResponse.model_validate(result)
    probabilities = variant.run(images)["probabilities"]
    assert len(result["predictions"]) == 4
    for row, prediction in zip(probabilities, result["predictions"], strict=True):
        best = int(row.argmax())
        assert prediction["class_index"] == best
        assert prediction["label"] == str(best)
        assert prediction["probability"] == pytest.approx(float(row[best]))
        ranked = [c["class_index"] for c in prediction["top_k"]]
        assert ranked == list(np.argsort(-row, kind="stable")[:3])
        assert prediction["top_k"][0]["class_index"] == best


def test_top_k_is_capped_at_the_number_of_classes(store: ModelStore) -> None:
    result = inference.classify(store.variant("tiny", "baseline"), _batch(1), top_k=50)
    top = result["predictions"][0]["top_k"]
    assert len(top) == 10
    assert sum(c["probability"] for c in top) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_embed(store: ModelStore, normalize: bool) -> None:
    variant = store.variant("tiny", "pretrained")
    result = inference.embed(variant, _batch(2), normalize=normalize)
    EmbedResponse.model_validate(result)
    raw = variant.run(_batch(2))["embedding"]
    vectors = np.array([e["vector"] for e in result["embeddings"]])
    assert [e["size"] for e in result["embeddings"]] == [16, 16]
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(
            vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5
        )
    else:
        np.testing.assert_allclose(vectors, raw)


def test_compare_without_labels(store: ModelStore) -> None:
    first, second = store.variant("tiny", "pretrained"), store.variant("tiny", "baseline")
    images = _batch(6)
    result = inference.compare(first, second, images)
    CompareResponse.model_validate(result)
    p = first.run(images)["probabilities"]
    q = second.run(images)["probabilities"]
    agree = p.argmax(1) == q.argmax(1)
    assert [r["agree"] for r in result["results"]] == agree.tolist()
    assert result["summary"]["agreement_rate"] == pytest.approx(agree.mean())
    np.testing.assert_allclose(
        [r["js_divergence"] for r in result["results"]], js_divergence(p, q), rtol=1e-6
    )
    assert result["summary"]["labeled"] is None
    assert all(v > 0 for v in result["summary"]["latency_ms"].values())


def test_compare_with_labels_runs_mcnemar(store: ModelStore) -> None:
    first, second = store.variant("tiny", "pretrained"), store.variant("tiny", "baseline")
    images = _batch(20)
    labels = mnist()[1][:20].tolist()
    result = inference.compare(first, second, images, labels)
    CompareResponse.model_validate(result)
    right_a = first.run(images)["probabilities"].argmax(1) == labels
    right_b = second.run(images)["probabilities"].argmax(1) == labels
    labeled = result["summary"]["labeled"]
    assert labeled["accuracy"] == {"pretrained": right_a.mean(), "baseline": right_b.mean()}
    b = int((right_a & ~right_b).sum())
    c = int((right_b & ~right_a).sum())
    assert labeled["mcnemar"]["only_pretrained_correct"] == b
    assert labeled["mcnemar"]["only_baseline_correct"] == c
    assert labeled["mcnemar"]["p_value"] == mcnemar_exact(b, c).p_value
    assert [r["true_label"] for r in result["results"]] == [str(x) for x in labels]


def test_labels_accept_class_names_and_indices(store: ModelStore) -> None:
    manifest = store.variant("tiny", "pretrained").manifest
    indices = inference.label_indices([3, "4", "9", 0], manifest)
    assert indices.tolist() == [3, 4, 9, 0]


@pytest.mark.parametrize("bad", [10, -1, "cat", True])
def test_unknown_label_names_its_position(store: ModelStore, bad: object) -> None:
    manifest = store.variant("tiny", "pretrained").manifest
    with pytest.raises(ValidationFailed, match=r"labels\[1\]: .* is neither a class name"):
        inference.label_indices([1, bad], manifest)  # type: ignore[list-item]
