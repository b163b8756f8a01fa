"""The protobuf codec: requests into the V2 data plane's form, results back into messages."""

from __future__ import annotations

import re

import numpy as np
import pytest

from service.errors import BadRequest
from service.grpc import codec
from service.grpc.generated import grpc_service_pb2 as pb
from service.v2.codec import OutputTensor
from service.v2.inference import InferenceResult

PIXELS = np.arange(2 * 4, dtype=np.uint8).reshape(2, 1, 2, 2)


def _tensor(
    datatype: str = "UINT8", shape: tuple[int, ...] = PIXELS.shape
) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(name="image", datatype=datatype, shape=list(shape))


def test_raw_contents_become_binary_chunks() -> None:
    message = pb.ModelInferRequest(model_name="m-pretrained", id="r1", inputs=[_tensor()])
    message.raw_input_contents.append(PIXELS.tobytes())
    message.parameters["unit"].string_param = "u"
    message.outputs.add(name="probabilities").parameters["classification"].int64_param = 3
    request, chunks = codec.read_request(message)
    assert (request.id, request.model_name, request.parameters) == ("r1", None, {"unit": "u"})
    assert chunks[0] is not None
    assert bytes(chunks[0]) == PIXELS.tobytes()
    assert request.inputs[0].data is None
    assert request.outputs is not None
    assert request.outputs[0].parameters == {"classification": 3}


def test_typed_contents_become_data() -> None:
    tensor = _tensor()
    tensor.contents.uint_contents.extend(PIXELS.ravel().tolist())
    request, chunks = codec.read_request(pb.ModelInferRequest(model_name="m", inputs=[tensor]))
    assert chunks == [None]
    np.testing.assert_array_equal(request.inputs[0].data, PIXELS.ravel())
    assert request.id is None


@pytest.mark.parametrize(
    ("datatype", "field", "values", "message"),
    [
        (
            "UINT8",
            "fp32_contents",
            [1.0],
            "its values go in contents.uint_contents, not fp32_contents",
        ),
        ("FP16", "fp32_contents", [1.0], "FP16 has no contents field"),
        ("UINT8", None, [], "has no data (send contents.uint_contents, or raw_input_contents)"),
    ],
)
def test_contents_that_do_not_fit_are_named(
    datatype: str, field: str | None, values: list[float], message: str
) -> None:
    tensor = _tensor(datatype)
    if field is not None:
        getattr(tensor.contents, field).extend(values)
    with pytest.raises(BadRequest, match=re.escape(message)):
        codec.read_request(pb.ModelInferRequest(model_name="m", inputs=[tensor]))


def test_raw_and_contents_together_are_refused() -> None:
    tensor = _tensor()
    tensor.contents.uint_contents.append(1)
    message = pb.ModelInferRequest(model_name="m", inputs=[tensor])
    message.raw_input_contents.append(PIXELS.tobytes())
    with pytest.raises(BadRequest, match=r"both contents\.uint_contents and raw_input_contents"):
        codec.read_request(message)


def test_an_impossible_shape_is_a_bad_request() -> None:
    tensor = _tensor(shape=(2**40, 1))
    tensor.contents.uint_contents.append(1)
    with pytest.raises(BadRequest, match=r"invalid inference request: inputs\.0\.shape\.0"):
        codec.read_request(pb.ModelInferRequest(model_name="m", inputs=[tensor]))


def _result() -> InferenceResult:
    probabilities = np.array([[0.25, 0.75]], dtype=np.float32)
    labels = np.array([["0.75:1:one"]], dtype=object)
    header = {
        "model_name": "m-pretrained",
        "model_version": "1",
        "id": "r",
        "parameters": {"a": 1, "b": "x", "c": True, "d": 0.5},
    }
    outputs = [
        OutputTensor("probabilities", "FP32", probabilities, False),
        OutputTensor("top", "BYTES", labels, False),
    ]
    return InferenceResult(header, outputs, images=1)


def test_a_result_in_typed_contents() -> None:
    response = codec.write_response(_result(), raw=False)
    assert (response.model_name, response.model_version, response.id) == ("m-pretrained", "1", "r")
    assert codec.read_parameters(response.parameters) == {"a": 1, "b": "x", "c": True, "d": 0.5}
    first, second = response.outputs
    assert list(first.shape) == [1, 2]
    assert list(first.contents.fp32_contents) == [0.25, 0.75]
    assert list(second.contents.bytes_contents) == [b"0.75:1:one"]
    assert not response.raw_output_contents


def test_a_result_in_raw_contents() -> None:
    response = codec.write_response(_result(), raw=True)
    probabilities, labels = response.raw_output_contents
    np.testing.assert_array_equal(np.frombuffer(probabilities, np.float32), [0.25, 0.75])
    assert labels == len(b"0.75:1:one").to_bytes(4, "little") + b"0.75:1:one"
    assert not response.outputs[0].HasField("contents")
