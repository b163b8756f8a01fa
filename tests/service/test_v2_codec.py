"""The V2 tensor codec, checked against tritonclient's own encoder and decoder."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import numpy as np
import pytest
from tritonclient.http import InferResult
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from service.v2 import codec
from service.v2.request import RequestInput


def _input(**fields: Any) -> RequestInput:
    base: dict[str, Any] = {"name": "image", "datatype": "UINT8", "shape": [1, 2, 3]}
    return RequestInput.model_validate({**base, **fields})


def test_split_body_without_header_length_is_all_json() -> None:
    header, binary = codec.split_body(b'{"inputs": []}', None)
    assert header == b'{"inputs": []}'
    assert len(binary) == 0


def test_split_body_cuts_at_the_header_length() -> None:
    header, binary = codec.split_body(b'{"a":1}\x01\x02', "7")
    assert header == b'{"a":1}'
    assert bytes(binary) == b"\x01\x02"


@pytest.mark.parametrize(
    ("value", "message"),
    [("seven", "is not an integer"), ("0", "at least 1"), ("99", "the body has 9 bytes")],
)
def test_split_body_rejects_a_bad_header_length(value: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        codec.split_body(b'{"a":1}\x01\x02', value)


def test_binary_chunks_follow_input_order() -> None:
    first = _input(name="a", parameters={"binary_data_size": 2})
    json_one = _input(name="b", data=[1, 2, 3, 4, 5, 6])
    second = _input(name="c", parameters={"binary_data_size": 3})
    chunks = codec.binary_chunks([first, json_one, second], memoryview(b"xyABC"))
    assert [None if c is None else bytes(c) for c in chunks] == [b"xy", None, b"ABC"]


@pytest.mark.parametrize(
    ("tensor", "binary", "message"),
    [
        (_input(parameters={"binary_data_size": 4}), b"abc", "runs past the end"),
        (_input(parameters={"binary_data_size": 2}), b"abc", "1 bytes after the JSON header"),
        (_input(parameters={"binary_data_size": -1}), b"", "must be an integer from 0 to"),
        (_input(parameters={"binary_data_size": "6"}), b"", "must be an integer from 0 to"),
        (_input(parameters={"binary_data_size": 1}, data=[1]), b"a", "both 'data' and"),
    ],
)
def test_binary_chunks_reject_sizes_that_do_not_add_up(
    tensor: RequestInput, binary: bytes, message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        codec.binary_chunks([tensor], memoryview(binary))


def test_to_array_reads_flat_and_nested_data_row_major() -> None:
    flat = codec.to_array(_input(data=[1, 2, 3, 4, 5, 6]), None, np.dtype("u1"))
    nested = codec.to_array(_input(data=[[[1, 2, 3], [4, 5, 6]]]), None, np.dtype("u1"))
    expected = np.arange(1, 7, dtype=np.uint8).reshape(1, 2, 3)
    np.testing.assert_array_equal(flat, expected)
    np.testing.assert_array_equal(nested, expected)
    assert flat.dtype == np.uint8


def test_to_array_reads_binary_bytes() -> None:
    raw = bytes(range(6))
    array = codec.to_array(_input(), memoryview(raw), np.dtype("u1"))
    np.testing.assert_array_equal(array.ravel(), np.arange(6))
    assert array.shape == (1, 2, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2, 3, 4, 5], "holds 6 values, but data has 5"),
        ([[1, 2, 3], [4, 5]], "ragged"),
        ([1, 2, 3, 4, 5, 6.5], "got floating-point numbers"),
        ([1, 2, 3, 4, 5, "6"], "got strings"),
        ([True] * 6, "got booleans"),
        ([1, 2, 3, 4, 5, 256], "must lie in 0..255, got values from 1 to 256"),
        ([-1, 2, 3, 4, 5, 6], "must lie in 0..255"),
        ("abcdef", "holds 6 values, but data has 1"),
    ],
)
def test_to_array_rejects_data_that_does_not_fit(data: Any, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as info:
        codec.to_array(_input(data=data), None, np.dtype("u1"))
    assert "input 'image'" in info.value.message


def test_to_array_rejects_a_binary_size_that_does_not_fit_the_shape() -> None:
    with pytest.raises(BadRequest, match="binary_data_size is 5 bytes, but shape"):
        codec.to_array(_input(), memoryview(b"12345"), np.dtype("u1"))


def test_to_array_needs_some_data() -> None:
    with pytest.raises(BadRequest, match="has no data"):
        codec.to_array(_input(), None, np.dtype("u1"))


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), (None, lambda b: b)],
)
def test_decompress_undoes_what_tritonclient_may_send(encoding: str | None, compress: Any) -> None:
    body = b'{"inputs": []}' * 10
    assert codec.decompress(compress(body), encoding, limit=1024) == body


def test_decompress_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert len(bomb) < 2000
    with pytest.raises(PayloadTooLarge, match="over the limit of 4096 bytes"):
        codec.decompress(bomb, "gzip", limit=4096)


def test_decompress_rejects_unknown_and_broken_encodings() -> None:
    with pytest.raises(UnsupportedMediaType, match="'br' is not supported"):
        codec.decompress(b"x", "br", limit=10)
    with pytest.raises(BadRequest, match="not valid gzip"):
        codec.decompress(b"not gzip at all", "gzip", limit=100)
    with pytest.raises(BadRequest, match="truncated"):
        codec.decompress(gzip.compress(b"abc" * 100)[:-12], "gzip", limit=1000)


def _outputs(binary: bool) -> list[codec.OutputTensor]:
    probabilities = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    labels = np.array([["0.75:1:b"], ["0.5:0:a"]], dtype=object)
    return [
        codec.OutputTensor("probabilities", "FP32", probabilities, binary),
        codec.OutputTensor("probabilities_top", "BYTES", labels, binary),
    ]


@pytest.mark.parametrize("binary", [False, True])
def test_encode_response_is_read_back_by_tritonclient(binary: bool) -> None:
    body, header_length = codec.encode_response({"model_name": "m", "id": "7"}, _outputs(binary))
    assert (header_length is not None) == binary
    result = InferResult.from_response_body(body, header_length=header_length)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    )
    top = result.as_numpy("probabilities_top")
    assert top.shape == (2, 1)
    assert [v.decode() if isinstance(v, bytes) else v for v in top.ravel()] == [
        "0.75:1:b",
        "0.5:0:a",
    ]
    assert result.get_response()["id"] == "7"


def test_encode_response_without_binary_is_plain_json() -> None:
    body, header_length = codec.encode_response({"model_name": "m"}, _outputs(False))
    assert header_length is None
    parsed = json.loads(body)
    assert parsed["outputs"][0] == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [2, 2],
        "data": [0.25, 0.75, 0.5, 0.5],
    }


def test_serialize_bytes_matches_tritonclient() -> None:
    values = np.array([["0.9:3:three", ""], ["é:1:x", "a"]], dtype=object)
    ours = codec.serialize_bytes(values)
    assert ours == serialize_byte_tensor(values).item()
    back = deserialize_bytes_tensor(ours)
    assert [b.decode() for b in back] == ["0.9:3:three", "", "é:1:x", "a"]


@pytest.mark.parametrize(
    "chunk", [None, memoryview(np.array([1, 2, 3, 4, 5, np.nan], dtype="<f4").tobytes())]
)
def test_to_array_refuses_nan_and_infinity(chunk: memoryview | None) -> None:
    tensor = _input(datatype="FP32", data=None if chunk else [1, 2, 3, 4, 5, float("inf")])
    with pytest.raises(BadRequest, match="FP32 data must be finite numbers, not NaN or infinity"):
        codec.to_array(tensor, chunk, np.dtype("<f4"))


def test_to_array_refuses_data_nested_past_numpys_dimensions() -> None:
    deep: Any = 1
    for _ in range(900):
        deep = [deep]
    with pytest.raises(BadRequest, match="ragged nested list"):
        codec.to_array(_input(shape=[1], data=deep), None, np.dtype("u1"))


def test_a_heavy_json_header_is_refused_before_it_is_parsed() -> None:
    body = b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1], "data": ['
    body += b"[]," * (1 << 20) + b"[]]}]}"
    with pytest.raises(PayloadTooLarge, match=r"holds up to \d+ JSON values, over the limit"):
        codec.read_request(body, None, None, len(body))


def test_huge_integer_parameters_are_shown_cut_short() -> None:
    tensor = _input(parameters={"binary_data_size": 10**400})
    with pytest.raises(BadRequest, match=r"from 0 to 9007199254740991, got 10{36}\.\.\.$"):
        codec.binary_chunks([tensor], memoryview(b""))


def test_encode_response_never_writes_nan() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        codec.encode_response({"parameters": {"p": float("nan")}}, [])


def test_every_member_of_a_gzip_body_is_read() -> None:
    body = gzip.compress(b'{"inputs": ') + gzip.compress(b"[]}")
    assert codec.decompress(body, "gzip", limit=1000) == b'{"inputs": []}'
    with pytest.raises(PayloadTooLarge):
        codec.decompress(gzip.compress(b"a" * 600) * 2, "gzip", limit=1000)
    with pytest.raises(BadRequest, match="not valid gzip"):
        codec.decompress(gzip.compress(b"abc") + b"trailing", "gzip", limit=1000)


def test_data_after_a_deflate_stream_is_refused() -> None:
    with pytest.raises(BadRequest, match="3 bytes after the end"):
        codec.decompress(zlib.compress(b"abc") + b"xyz", "deflate", limit=1000)
