from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from service.errors import ModelNotFound, NotReady, VariantNotFound
from service.manifest import sha256_file
from service.runtime import ModelStore
from tests.builders import manifest_for, tiny_onnx_model


def test_loads_both_variants_and_runs(repository: Path) -> None:
    store = ModelStore.load(repository)
    assert store.ready
    assert store.problems == []
    images = np.random.default_rng(0).integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)
    out = store.variant("tiny", "pretrained").run(images)
    assert out["probabilities"].shape == (3, 10)
    assert out["embedding"].shape == (3, 16)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    other = store.variant("tiny", "baseline").run(images, outputs=["probabilities"])
    assert list(other) == ["probabilities"]
    assert not np.allclose(other["probabilities"], out["probabilities"])


def test_unknown_model_and_variant_list_the_known_ones(repository: Path) -> None:
    store = ModelStore.load(repository)
    with pytest.raises(ModelNotFound, match=r"unknown model 'nope' \(known: tiny\)"):
        store.model("nope")
    with pytest.raises(VariantNotFound, match=r"known: pretrained, baseline"):
        store.variant("tiny", "other")


def test_empty_repository_is_not_ready(tmp_path: Path) -> None:
    store = ModelStore.load(tmp_path)
    assert not store.ready
    assert store.not_ready_reason == "no models in the model repository"
    with pytest.raises(NotReady):
        store.model("tiny")


def _rewrite(directory: Path, data: bytes, **shape: int) -> None:
    (directory / "model.onnx").write_bytes(data)
    manifest_for("tiny", directory.name, sha256_file(directory / "model.onnx"), **shape).write(
        directory
    )


def test_broken_onnx_with_matching_hash_is_skipped(repository: Path) -> None:
    _rewrite(repository / "tiny" / "baseline", b"not an onnx file")
    store = ModelStore.load(repository)
    assert list(store.model("tiny")) == ["pretrained"]
    assert len(store.problems) == 1
    assert "cannot be loaded by ONNX Runtime" in store.problems[0].reason


def test_graph_that_disagrees_with_manifest_is_skipped(repository: Path) -> None:
    model = tiny_onnx_model(height=8, width=8)
    _rewrite(repository / "tiny" / "baseline", model.SerializeToString())
    store = ModelStore.load(repository)
    assert list(store.model("tiny")) == ["pretrained"]
    assert "does not match the manifest's [N, 1, 28, 28]" in store.problems[0].reason


def test_wrong_class_count_is_skipped(repository: Path) -> None:
    onnx.save(tiny_onnx_model(num_classes=3), repository / "tiny" / "baseline" / "model.onnx")
    directory = repository / "tiny" / "baseline"
    manifest_for("tiny", "baseline", sha256_file(directory / "model.onnx")).write(directory)
    store = ModelStore.load(repository)
    assert "graph output 'probabilities' has shape" in store.problems[0].reason
