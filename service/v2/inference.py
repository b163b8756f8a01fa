"""Turn a checked V2 inference request into a model run, and its outputs into the response."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import BadRequest
from service.v2.classification import classify
from service.v2.codec import OutputTensor
from service.v2.request import InferenceRequest
from service.v2.validation import ModelSpec, WantedOutput, check_inputs, check_outputs

# Request parameters the protocol or tritonclient give a meaning of their own; the rest
# are the caller's and come back unchanged in the response's ``parameters``.
_RESERVED_PARAMETERS = frozenset(
    {"binary_data_output", "sequence_id", "sequence_start", "sequence_end", "priority", "timeout"}
)


@dataclass(frozen=True)
class PreparedRequest:
    """A request's images, checked against the model, and the outputs it asks for."""

    images: NDArray[np.uint8]
    wanted: list[WantedOutput]


@dataclass(frozen=True)
class InferenceResult:
    """A response's JSON fields besides ``outputs``, its outputs, and how many images ran."""

    header: dict[str, Any]
    outputs: list[OutputTensor]
    images: int


def prepare(
    request: InferenceRequest,
    chunks: Sequence[memoryview | None],
    spec: ModelSpec,
    max_batch: int,
) -> PreparedRequest:
    """Check the request against the model's metadata before anything runs."""
    _check_names(request, spec)
    arrays = check_inputs(request, chunks, spec, max_batch)
    return PreparedRequest(arrays["image"], check_outputs(request, spec))


def _check_names(request: InferenceRequest, spec: ModelSpec) -> None:
    """A body that names a model (as KServe's SDK does) must name the one in the URL."""
    if request.model_name is not None and request.model_name != spec.name:
        raise BadRequest(
            f"model_name {request.model_name!r} in the body does not match the URL's {spec.name!r}"
        )
    if request.model_version not in (None, "", spec.version):
        raise BadRequest(
            f"model_version {request.model_version!r} in the body does not match the served "
            f"version {spec.version!r}"
        )


def respond(
    request: InferenceRequest,
    spec: ModelSpec,
    prepared: PreparedRequest,
    results: dict[str, NDArray[np.float32]],
) -> InferenceResult:
    """The response to ``request`` from the model's named outputs."""
    outputs = [
        OutputTensor(
            w.name, "BYTES", classify(results[w.name], w.class_count, spec.labels), w.binary
        )
        if w.class_count
        else OutputTensor(w.name, "FP32", results[w.name], w.binary)
        for w in prepared.wanted
    ]
    header: dict[str, Any] = {"model_name": spec.name, "model_version": spec.version}
    if request.id is not None:
        header["id"] = request.id
    passed = {k: v for k, v in (request.parameters or {}).items() if k not in _RESERVED_PARAMETERS}
    if passed:
        header["parameters"] = passed
    return InferenceResult(header, outputs, images=len(prepared.images))
