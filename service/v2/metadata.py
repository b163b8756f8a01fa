"""What the V2 protocol says about the server and about each variant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.manifest import Manifest
from service.naming import v2_name
from service.v2.validation import ModelSpec, TensorSpec
from service.version import __version__

SERVER_NAME = "headstart"
EXTENSIONS = (
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
    "model_repository",
)
PLATFORM = "onnxruntime_onnx"


def server_metadata() -> dict[str, Any]:
    """``$metadata_server_response``."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


def model_spec(manifest: Manifest) -> ModelSpec:
    """The V2 view of a manifest: ``image`` in, ``probabilities`` and ``embedding`` out."""
    spec = manifest.input
    return ModelSpec(
        name=v2_name(manifest),
        version=manifest.version,
        inputs=(TensorSpec("image", "UINT8", (-1, spec.channels, spec.height, spec.width)),),
        outputs=(
            TensorSpec("probabilities", "FP32", (-1, manifest.num_classes)),
            TensorSpec("embedding", "FP32", (-1, manifest.embedding_dim)),
        ),
        labelled="probabilities",
        labels=tuple(manifest.class_names),
    )


def model_metadata(manifest: Manifest, versions: Sequence[str] = ()) -> dict[str, Any]:
    """``$metadata_model_response``: ``versions`` lists every loaded one (default: the
    manifest's own)."""
    spec = model_spec(manifest)
    return {
        "name": spec.name,
        "versions": list(versions) or [spec.version],
        "platform": PLATFORM,
        "inputs": [t.to_json() for t in spec.inputs],
        "outputs": [t.to_json() for t in spec.outputs],
    }
