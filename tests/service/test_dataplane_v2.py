"""The data plane's V2 side: resolving V2 model names and running inference, without HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.dataplane import DataPlane
from service.errors import ModelNotFound, NotFound, NotReady
from service.runtime import ModelStore
from service.settings import Settings
from service.v2.metadata import model_metadata
from service.v2.request import InferenceRequest
from tests.builders import write_repository, write_variant


@pytest.fixture
def plane(tmp_path: Path) -> DataPlane:
    root = write_repository(tmp_path / "repo", names=("tiny", "wide_1.0"))
    write_variant(root, "odd", "pretrained", height=8, width=6, num_classes=3, embedding_dim=5)
    (root / "tiny" / "baseline" / "manifest.json").write_text("{}", encoding="utf-8")
    return DataPlane(ModelStore.load(root), Settings(model_repository=root, max_batch=2))


def test_resolve_splits_model_and_variant(plane: DataPlane) -> None:
    loaded = plane.v2_variant("wide_1.0-baseline")
    assert (loaded.manifest.name, loaded.manifest.variant) == ("wide_1.0", "baseline")
    assert plane.v2_variant("wide_1.0-baseline", "1") is loaded


@pytest.mark.parametrize("name", ["tiny", "pretrained", "-pretrained", "tiny-", "wide-pretrained"])
def test_resolve_unknown_names_lists_the_known_ones(plane: DataPlane, name: str) -> None:
    with pytest.raises(ModelNotFound) as info:
        plane.v2_variant(name)
    assert info.value.message == (
        f"unknown model {name!r} (known: odd-pretrained, tiny-pretrained, "
        "wide_1.0-baseline, wide_1.0-pretrained)"
    )


def test_resolve_unknown_version(plane: DataPlane) -> None:
    with pytest.raises(NotFound, match="has no version '0' "):
        plane.v2_variant("tiny-pretrained", "0")


def test_resolve_reports_why_a_variant_did_not_load(plane: DataPlane) -> None:
    with pytest.raises(NotReady, match=r"^model 'tiny-baseline' is not ready: .*schema_version"):
        plane.v2_variant("tiny-baseline")
    with pytest.raises(NotReady, match=r"^model 'odd-baseline' is not ready: .*missing"):
        plane.v2_variant("odd-baseline")


def test_model_metadata_follows_the_manifest(plane: DataPlane) -> None:
    metadata = model_metadata(plane.v2_variant("odd-pretrained").manifest)
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 1, 8, 6]}]
    assert [o["shape"] for o in metadata["outputs"]] == [[-1, 3], [-1, 5]]


def test_infer_runs_once_and_keeps_the_callers_parameters(plane: DataPlane) -> None:
    loaded = plane.v2_variant("odd-pretrained")
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
    result = plane.infer("odd-pretrained", None, request, [None])
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
