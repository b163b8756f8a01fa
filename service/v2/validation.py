"""Check an inference request against the model's metadata before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from numpy.typing import NDArray

from service.errors import BadRequest, PayloadTooLarge
from service.v2.codec import DTYPES, to_array
from service.v2.request import InferenceRequest, bool_parameter, count_parameter


@dataclass(frozen=True)
class TensorSpec:
    """A tensor in model metadata; ``-1`` marks the variable batch dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelSpec:
    """What a V2 model takes and returns; ``labels`` name the ``labelled`` output's columns."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labelled: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class WantedOutput:
    """One output to return: as JSON or binary, raw or as the top ``class_count`` classes."""

    name: str
    binary: bool
    class_count: int = 0


def check_inputs(
    request: InferenceRequest,
    chunks: Sequence[memoryview | None],
    spec: ModelSpec,
    max_batch: int,
) -> dict[str, NDArray[Any]]:
    """Return every input as an array; ``BadRequest`` names the first thing that does not fit."""
    expected = {t.name: t for t in spec.inputs}
    arrays: dict[str, NDArray[Any]] = {}
    for tensor, chunk in zip(request.inputs, chunks, strict=True):
        target = expected.get(tensor.name)
        if target is None:
            raise BadRequest(
                f"unknown input {tensor.name!r}; model {spec.name!r} takes {_names(spec.inputs)}"
            )
        if tensor.name in arrays:
            raise BadRequest(f"input {tensor.name!r} is given more than once")
        where = f"input {tensor.name!r}"
        if tensor.datatype != target.datatype:
            raise BadRequest(
                f"{where} has datatype {tensor.datatype!r}; model {spec.name!r} takes {target.datatype}"
            )
        if not _shape_fits(tensor.shape, target.shape):
            raise BadRequest(
                f"{where} has shape {tensor.shape}; model {spec.name!r} takes "
                f"{list(target.shape)} (-1: any batch size of at least 1)"
            )
        batch = tensor.shape[0]
        if batch > max_batch:
            raise PayloadTooLarge(f"{where} holds {batch} images, over the limit of {max_batch}")
        arrays[tensor.name] = to_array(tensor, chunk, DTYPES[target.datatype])
    missing = [t.name for t in spec.inputs if t.name not in arrays]
    if missing:
        raise BadRequest(
            f"missing input {missing[0]!r}; model {spec.name!r} takes {_names(spec.inputs)}"
        )
    return arrays


def check_outputs(request: InferenceRequest, spec: ModelSpec) -> list[WantedOutput]:
    """Which outputs to return and how; every output when the request names none."""
    default_binary = bool_parameter(request.parameters, "binary_data_output", "request")
    if not request.outputs:
        return [WantedOutput(t.name, default_binary) for t in spec.outputs]
    known = {t.name for t in spec.outputs}
    wanted: list[WantedOutput] = []
    for output in request.outputs:
        where = f"output {output.name!r}"
        if output.name not in known:
            raise BadRequest(
                f"unknown output {output.name!r}; model {spec.name!r} returns {_names(spec.outputs)}"
            )
        if any(w.name == output.name for w in wanted):
            raise BadRequest(f"{where} is requested more than once")
        params = output.parameters or {}
        binary = (
            bool_parameter(params, "binary_data", where)
            if "binary_data" in params
            else default_binary
        )
        class_count = count_parameter(params, "classification", where) or 0
        if class_count and output.name != spec.labelled:
            raise BadRequest(
                f"{where}: the classification extension applies to {spec.labelled!r} only"
            )
        wanted.append(WantedOutput(output.name, binary, class_count))
    return wanted


def _shape_fits(shape: Sequence[int], expected: Sequence[int]) -> bool:
    if len(shape) != len(expected):
        return False
    return all(d >= 1 if e == -1 else d == e for d, e in zip(shape, expected, strict=True))


def _names(tensors: Sequence[TensorSpec]) -> str:
    return ", ".join(repr(t.name) for t in tensors)
