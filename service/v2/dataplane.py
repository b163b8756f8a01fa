"""Resolve V2 model names to loaded variants, describe them, and run inference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import ModelNotFound, NotFound, NotReady
from service.manifest import Manifest
from service.runtime import LoadedVariant, ModelStore
from service.v2.classification import classify
from service.v2.codec import OutputTensor
from service.v2.schema import InferenceRequest
from service.v2.validation import ModelSpec, TensorSpec, check_inputs, check_outputs
from service.version import __version__

SERVER_NAME = "headstart"
EXTENSIONS = ("binary_tensor_data", "classification")
PLATFORM = "onnxruntime_onnx"

# Request parameters the protocol or tritonclient give a meaning of their own; the rest
# are the caller's and come back unchanged in the response's ``parameters``.
_RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout"}
)


def v2_name(manifest: Manifest) -> str:
    """A variant's V2 model name, ``<model>-<variant>``."""
    return f"{manifest.name}-{manifest.variant}"


def split_v2_name(name: str) -> tuple[str, str]:
    """``(model, variant)`` from a V2 name; both empty when it has no hyphen."""
    # Model names hold no hyphen (see service.manifest), so the last one separates them.
    model, _, variant = name.rpartition("-")
    return (model, variant) if model else ("", "")


def server_metadata() -> dict[str, Any]:
    """``$metadata_server_response``."""
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


def resolve(store: ModelStore, name: str, version: str | None = None) -> LoadedVariant:
    """The loaded variant behind a V2 name; 404 when unknown, 503 when it failed to load."""
    store.require_ready()
    model, variant = split_v2_name(name)
    loaded = store.models.get(model, {}).get(variant) if model else None
    if loaded is None:
        reason = _load_problem(store, model, variant) if model else None
        if reason is not None:
            raise NotReady(f"model {name!r} is not ready: {reason}")
        known = ", ".join(
            sorted(v2_name(v.manifest) for vs in store.models.values() for v in vs.values())
        )
        raise ModelNotFound(f"unknown model {name!r} (known: {known})")
    if version is not None and version != loaded.manifest.version:
        raise NotFound(
            f"model {name!r} has no version {version!r} (available: {loaded.manifest.version})"
        )
    return loaded


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


def model_metadata(loaded: LoadedVariant) -> dict[str, Any]:
    """``$metadata_model_response``."""
    spec = model_spec(loaded.manifest)
    return {
        "name": spec.name,
        "versions": [spec.version],
        "platform": PLATFORM,
        "inputs": [t.to_json() for t in spec.inputs],
        "outputs": [t.to_json() for t in spec.outputs],
    }


@dataclass(frozen=True)
class InferenceResult:
    """A response's JSON fields besides ``outputs``, its outputs, and how many images ran."""

    header: dict[str, Any]
    outputs: list[OutputTensor]
    images: int


def infer(
    loaded: LoadedVariant,
    request: InferenceRequest,
    chunks: Sequence[memoryview | None],
    max_batch: int,
) -> InferenceResult:
    """Check the request against the model's metadata and run the model once."""
    spec = model_spec(loaded.manifest)
    arrays = check_inputs(request, chunks, spec, max_batch)
    wanted = check_outputs(request, spec)
    images = arrays["image"]
    results = loaded.run(images, outputs=[w.name for w in wanted])
    outputs = [
        OutputTensor(
            w.name, "BYTES", classify(results[w.name], w.class_count, spec.labels), w.binary
        )
        if w.class_count
        else OutputTensor(w.name, "FP32", results[w.name], w.binary)
        for w in wanted
    ]
    header: dict[str, Any] = {"model_name": spec.name, "model_version": spec.version}
    if request.id is not None:
        header["id"] = request.id
    passed = {k: v for k, v in (request.parameters or {}).items() if k not in _RESERVED_PARAMETERS}
    if passed:
        header["parameters"] = passed
    return InferenceResult(header, outputs, images=len(images))


def _load_problem(store: ModelStore, model: str, variant: str) -> str | None:
    """Why ``<root>/<model>/<variant>`` is in the repository but not loaded, if it is."""
    for problem in store.problems:
        try:
            parts = problem.path.relative_to(store.root).parts
        except ValueError:
            continue
        if parts[:2] == (model, variant):
            return problem.reason
    return None
