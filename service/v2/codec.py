"""Tensors on the wire: JSON ``data`` and the binary tensor data extension, both ways.

A request body is a JSON header, optionally followed by raw tensor bytes; the
``Inference-Header-Content-Length`` header says where the JSON ends. Binary
tensors are little-endian and row-major; a ``BYTES`` element is a 4-byte
little-endian length followed by its bytes.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.v2.request import InferenceRequest, RequestInput, count_parameter, parse_request

HEADER_LENGTH = "Inference-Header-Content-Length"

DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in (
        ("BOOL", "?"),
        ("UINT8", "u1"),
        ("UINT16", "<u2"),
        ("UINT32", "<u4"),
        ("UINT64", "<u8"),
        ("INT8", "i1"),
        ("INT16", "<i2"),
        ("INT32", "<i4"),
        ("INT64", "<i8"),
        ("FP16", "<f2"),
        ("FP32", "<f4"),
        ("FP64", "<f8"),
    )
}
"""The protocol's numeric datatypes and their little-endian numpy dtypes."""

_KIND_NAMES = {"b": "booleans", "f": "floating-point numbers", "c": "complex numbers"}
_NO_BINARY = memoryview(b"")


@dataclass(frozen=True)
class OutputTensor:
    """One response output: float32 values, or ``str`` objects for ``BYTES``."""

    name: str
    datatype: str
    array: NDArray[Any]
    binary: bool


def read_request(
    body: bytes, header_length: str | None, encoding: str | None, limit: int
) -> tuple[InferenceRequest, list[memoryview | None]]:
    """Parse an inference request body; return it and each input's binary bytes (or ``None``)."""
    body = decompress(body, encoding, limit)
    header, binary = split_body(body, header_length)
    request = parse_request(header)
    return request, binary_chunks(request.inputs, binary)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate``; past ``limit`` bytes it is ``PayloadTooLarge``."""
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported (use gzip, deflate or none)"
        )
    # A gzip body may be several members, each a whole gzip stream (RFC 1952): all are read.
    pieces: list[bytes] = []
    size = 0
    data = body
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            # max_length bounds the output, so a small "zip bomb" cannot fill the memory.
            piece = inflater.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise BadRequest(f"body is not valid {encoding} data ({exc})") from None
        pieces.append(piece)
        size += len(piece)
        if size > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
        if not inflater.eof:
            raise BadRequest(f"{encoding} body is truncated")
        data = inflater.unused_data
        if not data:
            return b"".join(pieces)
        if encoding != "gzip":
            raise BadRequest(f"{encoding} body has {len(data)} bytes after the end of its data")


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """Split a body into its JSON header and the binary part that follows it."""
    if header_length is None:
        return body, _NO_BINARY
    try:
        length = int(header_length)
    except ValueError:
        raise BadRequest(f"{HEADER_LENGTH} {header_length!r} is not an integer") from None
    if not 0 < length <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes "
            "(it must count the JSON header's bytes, at least 1)"
        )
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def binary_chunks(inputs: Sequence[RequestInput], binary: memoryview) -> list[memoryview | None]:
    """Cut the binary part into each input's bytes, in input order (``None``: data is JSON)."""
    chunks: list[memoryview | None] = []
    offset = 0
    for tensor in inputs:
        where = f"input {tensor.name!r}"
        size = count_parameter(tensor.parameters, "binary_data_size", where)
        if size is None:
            chunks.append(None)
            continue
        if tensor.data is not None:
            raise BadRequest(f"{where} has both 'data' and binary_data_size; send one of them")
        if offset + size > len(binary):
            raise BadRequest(
                f"{where}: binary_data_size {size} runs past the end of the body "
                f"({len(binary) - offset} binary bytes left)"
            )
        chunks.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary) - offset} bytes after the JSON header belong to no input "
            f"(check binary_data_size and {HEADER_LENGTH})"
        )
    return chunks


def to_array(tensor: RequestInput, chunk: memoryview | None, dtype: np.dtype[Any]) -> NDArray[Any]:
    """The input's values as a ``dtype`` array of its declared shape."""
    where = f"input {tensor.name!r}"
    count = math.prod(tensor.shape)
    if chunk is not None:
        if len(chunk) != count * dtype.itemsize:
            raise BadRequest(
                f"{where}: binary_data_size is {len(chunk)} bytes, but shape {tensor.shape} "
                f"of {tensor.datatype} takes {count * dtype.itemsize}"
            )
        array = np.frombuffer(chunk, dtype=dtype).reshape(tensor.shape)
        _check_finite(array, tensor.datatype, where)
        return array
    if tensor.data is None:
        raise BadRequest(f"{where} has no data (send 'data', or binary_data_size and the bytes)")
    try:
        values = np.asarray(tensor.data)
    except (ValueError, RecursionError):
        raise BadRequest(f"{where}: data is a ragged nested list, not a tensor") from None
    if values.size != count:
        raise BadRequest(
            f"{where}: shape {tensor.shape} holds {count} values, but data has {values.size}"
        )
    _check_values(values, dtype, tensor.datatype, where)
    return values.astype(dtype, copy=False).reshape(tensor.shape)


def _check_values(values: NDArray[Any], dtype: np.dtype[Any], datatype: str, where: str) -> None:
    kind = values.dtype.kind
    allowed = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}[dtype.kind]
    if kind not in allowed:
        got = _KIND_NAMES.get(kind, "strings or other non-numeric values")
        raise BadRequest(f"{where}: {datatype} data must be numbers of that type, got {got}")
    _check_finite(values, datatype, where)
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        low, high = int(values.min()), int(values.max())
        if low < info.min or high > info.max:
            raise BadRequest(
                f"{where}: {datatype} data must lie in {info.min}..{info.max}, "
                f"got values from {low} to {high}"
            )


def _check_finite(values: NDArray[Any], datatype: str, where: str) -> None:
    """Refuse NaN and infinities: a response could not carry what they turn into."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise BadRequest(f"{where}: {datatype} data must be finite numbers, not NaN or infinity")


def encode_response(
    header: dict[str, Any], outputs: Sequence[OutputTensor]
) -> tuple[bytes, int | None]:
    """Serialise a response: JSON alone, or a JSON header and binary tensors plus its length."""
    described: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out in outputs:
        entry: dict[str, Any] = {
            "name": out.name,
            "datatype": out.datatype,
            "shape": list(out.array.shape),
        }
        if out.binary:
            raw = (
                serialize_bytes(out.array)
                if out.datatype == "BYTES"
                else out.array.astype(DTYPES[out.datatype], copy=False).tobytes()
            )
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = out.array.ravel().tolist()
        described.append(entry)
    # allow_nan=False: bare NaN is not JSON, and no client's parser should have to cope.
    head = json.dumps(
        {**header, "outputs": described}, separators=(",", ":"), allow_nan=False
    ).encode()
    if not chunks:
        return head, None
    return b"".join([head, *chunks]), len(head)


def serialize_bytes(array: NDArray[Any]) -> bytes:
    """A ``BYTES`` tensor in the binary format: each element length-prefixed, row-major."""
    parts: list[bytes] = []
    for item in array.ravel():
        raw = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(struct.pack("<I", len(raw)))
        parts.append(raw)
    return b"".join(parts)
