from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service import results
from service.api.schemas import ClassifyResponse, CompareResponse, EmbedResponse
from service.dataplane import DataPlane
from service.decode import DecodeOptions
from service.errors import ValidationFailed
from service.runtime import ModelStore
from service.settings import Settings
from service.statistics import js_divergence, mcnemar_exact
from tests.images import mnist, png

OPTIONS = DecodeOptions()


@pytest.fixture
def plane(repository: Path) -> DataPlane:
    return DataPlane(ModelStore.load(repository), Settings(model_repository=repository))


def _pngs(n: int) -> list[bytes]:
    return [png(digit) for digit in mnist()[0][:n]]


def _decoded(plane: DataPlane, n: int) -> np.ndarray:
    return plane.decode(plane.variant("tiny", "pretrained"), _pngs(n), OPTIONS)


def test_classify_ranks_classes_by_probability(plane: DataPlane) -> None:
    variant = plane.variant("tiny", "pretrained")
    images = _decoded(plane, 4)
    result = plane.classify("tiny", "pretrained", _pngs(4), OPTIONS, top_k=3)
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


def test_top_k_is_capped_at_the_number_of_classes(plane: DataPlane) -> None:
    result = plane.classify("tiny", "baseline", _pngs(1), OPTIONS, top_k=50)
    top = result["predictions"][0]["top_k"]
    assert len(top) == 10
    assert sum(c["probability"] for c in top) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
def test_embed(plane: DataPlane, normalize: bool) -> None:
    variant = plane.variant("tiny", "pretrained")
    result = plane.embed("tiny", "pretrained", _pngs(2), OPTIONS, normalize=normalize)
    EmbedResponse.model_validate(result)
    raw = variant.run(_decoded(plane, 2))["embedding"]
    vectors = np.array([e["vector"] for e in result["embeddings"]])
    assert [e["size"] for e in result["embeddings"]] == [16, 16]
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(
            vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5
        )
    else:
        np.testing.assert_allclose(vectors, raw)


def test_embed_flags_blank_images_and_still_gives_their_vectors(plane: DataPlane) -> None:
    # A page with nothing on it, a page with one faint smudge, and a real digit.
    empty = png(np.full((40, 40), 250, dtype=np.uint8))
    smudge = np.full((40, 40), 250, dtype=np.uint8)
    smudge[18:22, 18:22] = 235
    images = [empty, png(smudge), *_pngs(1)]
    result = plane.embed("tiny", "pretrained", images, OPTIONS, normalize=False)
    EmbedResponse.model_validate(result)
    assert [e["blank"] for e in result["embeddings"]] == [True, True, False]
    assert [e["size"] for e in result["embeddings"]] == [16, 16, 16]
    # The flag is classify's: the same images are blank for both.
    classified = plane.classify("tiny", "pretrained", images, OPTIONS, top_k=1)
    assert [p["blank"] for p in classified["predictions"]] == [True, True, False]


def test_compare_without_labels(plane: DataPlane) -> None:
    first, second = plane.variant("tiny", "pretrained"), plane.variant("tiny", "baseline")
    images = _decoded(plane, 6)
    result = plane.compare("tiny", _pngs(6), OPTIONS)
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


def test_compare_with_labels_runs_mcnemar(plane: DataPlane) -> None:
    first, second = plane.variant("tiny", "pretrained"), plane.variant("tiny", "baseline")
    images = _decoded(plane, 20)
    labels = mnist()[1][:20].tolist()
    result = plane.compare("tiny", _pngs(20), OPTIONS, labels)
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


def test_labels_accept_class_names_and_indices(plane: DataPlane) -> None:
    manifest = plane.variant("tiny", "pretrained").manifest
    indices = results.label_indices([3, "4", "9", 0], manifest)
    assert indices.tolist() == [3, 4, 9, 0]


@pytest.mark.parametrize("bad", [10, -1, "cat", True])
def test_unknown_label_names_its_position(plane: DataPlane, bad: object) -> None:
    manifest = plane.variant("tiny", "pretrained").manifest
    with pytest.raises(ValidationFailed, match=r"labels\[1\]: .* is neither a class name"):
        results.label_indices([1, bad], manifest)  # type: ignore[list-item]


def test_a_bad_label_is_refused_before_any_image_is_decoded(plane: DataPlane) -> None:
    with pytest.raises(ValidationFailed, match=r"labels\[0\]"):
        plane.compare("tiny", [b"not an image"], OPTIONS, ["cat"])


def test_every_request_reaches_the_model_through_run(plane: DataPlane) -> None:
    calls: list[tuple[str, int]] = []
    original = plane.run

    def counting(variant, images, outputs=("probabilities", "embedding")):  # type: ignore[no-untyped-def]
        calls.append((variant.manifest.variant, len(images)))
        return original(variant, images, outputs)

    plane.run = counting  # type: ignore[method-assign]
    plane.classify("tiny", "baseline", _pngs(2), OPTIONS, top_k=1)
    plane.embed("tiny", "pretrained", _pngs(1), OPTIONS, normalize=False)
    plane.compare("tiny", _pngs(3), OPTIONS)
    assert calls == [("baseline", 2), ("pretrained", 1), ("pretrained", 3), ("baseline", 3)]
