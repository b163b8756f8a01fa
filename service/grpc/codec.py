"""Tensors in protobuf: a ``ModelInferRequest`` into the data plane's request, and back.

The request becomes the same :class:`~service.v2.request.InferenceRequest` and per-input
bytes that V2 over HTTP produces, so one set of checks (:mod:`service.v2.validation`,
:mod:`service.v2.codec`) judges both: ``raw_input_contents`` are the binary tensor data
extension's chunks, typed ``contents`` become the JSON ``data``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from service.errors import BadRequest
from service.grpc.generated import grpc_service_pb2 as pb
from service.v2.codec import DTYPES, OutputTensor, serialize_bytes
from service.v2.inference import InferenceResult
from service.v2.request import InferenceRequest

CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The ``InferTensorContents`` field that carries each datatype (FP16 travels raw only)."""

_FIELD_DTYPES = {
    "bool_contents": np.bool_,
    "int_contents": np.int32,
    "int64_contents": np.int64,
    "uint_contents": np.uint32,
    "uint64_contents": np.uint64,
    "fp32_contents": np.float32,
    "fp64_contents": np.float64,
}
_INT64_MAX = 2**63 - 1


def read_request(message: pb.ModelInferRequest) -> tuple[InferenceRequest, list[memoryview | None]]:
    """The request and each input's raw bytes (``None`` where the values came as contents).

    ``model_name`` and ``model_version`` are the request's address (a URL's part in HTTP), so
    they stay out of the body: an experiment may send it to another variant."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs "
            "(send one per input, in input order, or none)"
        )
    inputs: list[dict[str, Any]] = []
    chunks: list[memoryview | None] = []
    for index, tensor in enumerate(message.inputs):
        where = f"input {tensor.name!r}"
        filled = [field.name for field, _ in tensor.contents.ListFields()]
        data = None
        if raw:
            if filled:
                raise BadRequest(
                    f"{where} has both contents.{filled[0]} and raw_input_contents; send one"
                )
            chunks.append(memoryview(raw[index]))
        else:
            data = _contents(tensor, filled, where)
            chunks.append(None)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": read_parameters(tensor.parameters) or None,
                "data": data,
            }
        )
    fields = {
        "id": message.id or None,
        "parameters": read_parameters(message.parameters) or None,
        "inputs": inputs,
        "outputs": [
            {"name": o.name, "parameters": read_parameters(o.parameters) or None}
            for o in message.outputs
        ]
        or None,
    }
    try:
        return InferenceRequest.model_validate(fields), chunks
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        raise BadRequest("invalid inference request: " + "; ".join(problems)) from None


def _contents(tensor: pb.ModelInferRequest.InferInputTensor, filled: list[str], where: str) -> Any:
    """The values of a tensor sent as typed contents, as an array for the V2 checks."""
    expected = CONTENTS.get(tensor.datatype)
    if tensor.datatype == "FP16":
        raise BadRequest(f"{where}: FP16 has no contents field; send it in raw_input_contents")
    if not filled:
        field = f"contents.{expected}" if expected else "its contents field"
        raise BadRequest(f"{where} has no data (send {field}, or raw_input_contents)")
    if len(filled) > 1:
        raise BadRequest(f"{where}: contents holds {', '.join(filled)}; send one field")
    field = filled[0]
    if expected is not None and field != expected:
        raise BadRequest(
            f"{where} is {tensor.datatype}: its values go in contents.{expected}, not {field}"
        )
    values = getattr(tensor.contents, field)
    if field == "bytes_contents":
        return list(values)
    return np.asarray(values, dtype=_FIELD_DTYPES[field])


def read_parameters(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A protobuf parameter map as plain values; an entry with no value set is left out."""
    out: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(parameter, choice)
    return out


def write_parameters(target: Any, values: Mapping[str, Any]) -> None:
    """Fill a protobuf parameter map from plain values (bool, int, float, str)."""
    for key, value in values.items():
        parameter = target[key]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int):
            if value > _INT64_MAX:
                parameter.uint64_param = value
            else:
                parameter.int64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        else:
            parameter.string_param = str(value)


def write_response(result: InferenceResult, raw: bool) -> pb.ModelInferResponse:
    """The response: every output in ``raw_output_contents`` if ``raw``, else typed contents."""
    header = result.header
    response = pb.ModelInferResponse(
        model_name=header["model_name"],
        model_version=header["model_version"],
        id=header.get("id") or "",
    )
    write_parameters(response.parameters, header.get("parameters") or {})
    for out in result.outputs:
        tensor = response.outputs.add(name=out.name, datatype=out.datatype, shape=out.array.shape)
        if raw:
            response.raw_output_contents.append(raw_bytes(out))
        elif out.datatype == "BYTES":
            tensor.contents.bytes_contents.extend(str(s).encode() for s in out.array.ravel())
        else:
            getattr(tensor.contents, CONTENTS[out.datatype]).extend(out.array.ravel().tolist())
    return response


def raw_bytes(out: OutputTensor) -> bytes:
    """One output as the binary tensor data extension lays it out."""
    if out.datatype == "BYTES":
        return serialize_bytes(out.array)
    return out.array.astype(DTYPES[out.datatype], copy=False).tobytes()
