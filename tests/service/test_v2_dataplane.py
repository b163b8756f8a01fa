"""Resolving V2 model names and running inference, without HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelNotFound, NotFound, NotReady
from service.runtime import ModelStore
from service.v2 import dataplane
from service.v2.schema import InferenceRequest
from tests.builders import write_repository, write_variant


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    root = write_repository(tmp_path / "repo", names=("tiny", "wide_1.0"))
    write_variant(root, "odd", "pretrained", height=8, width=6, num_classes=3, embedding_dim=5)
    (root / "tiny" / "baseline" / "manifest.json").write_text("{}", encoding="utf-8")
    return ModelStore.load(root)


def test_resolve_splits_model_and_variant(store: ModelStore) -> None:
    loaded = dataplane.resolve(store, "wide_1.0-baseline")
    assert (loaded.manifest.name, loaded.manifest.variant) == ("wide_1.0", "baseline")
    assert dataplane.resolve(store, "wide_1.0-baseline", "1") is loaded


@pytest.mark.parametrize("name", ["tiny", "pretrained", "-pretrained", "tiny-", "wide-pretrained"])
def test_resolve_unknown_names_lists_the_known_ones(store: ModelStore, name: str) -> None:
    with pytest.raises(ModelNotFound) as info:
        dataplane.resolve(store, name)
    assert info.value.message == (
        f"unknown model {name!r} (known: odd-pretrained, tiny-pretrained, "
        "wide_1.0-baseline, wide_1.0-pretrained)"
    )


def test_resolve_unknown_version(store: ModelStore) -> None:
    with pytest.raises(NotFound, match="has no version '0' "):
        dataplane.resolve(store, "tiny-pretrained", "0")


def test_resolve_reports_why_a_variant_did_not_load(store: ModelStore) -> None:
    with pytest.raises(NotReady, match=r"^model 'tiny-baseline' is not ready: .*schema_version"):
        dataplane.resolve(store, "tiny-baseline")
    with pytest.raises(NotReady, match=r"^model 'odd-baseline' is not ready: .*missing"):
        dataplane.resolve(store, "odd-baseline")


def test_model_metadata_follows_the_manifest(store: ModelStore) -> None:
    metadata = dataplane.model_metadata(dataplane.resolve(store, "odd-pretrained"))
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 1, 8, 6]}]
    assert [o["shape"] for o in metadata["outputs"]] == [[-1, 3], [-1, 5]]


def test_infer_runs_once_and_keeps_the_callers_parameters(store: ModelStore) -> None:
    loaded = dataplane.resolve(store, "odd-pretrained")
    pixels = np.arange(2 * 48, dtype=np.uint8).reshape(2, 1, 8, 6)
    request = InferenceRequest.model_validate(
        {
            "id": "r",
            "parameters": {"binary_data_output": True, "tenant": "a"},
            "inputs": [
                {
                    "name": "image",
                    "datatype": "UINT8",
                    "shape": [2, 1, 8, 6],
                    "data": pixels.tolist(),
                }
            ],
            "outputs": [{"name": "embedding"}],
        }
    )
    result = dataplane.infer(loaded, request, [None], max_batch=2)
    assert result.images == 2
    assert result.header == {
        "model_name": "odd-pretrained",
        "model_version": "1",
        "id": "r",
        "parameters": {"tenant": "a"},
    }
    (output,) = result.outputs
    assert (output.name, output.datatype, output.binary) == ("embedding", "FP32", True)
    np.testing.assert_array_equal(output.array, loaded.run(pixels)["embedding"])
