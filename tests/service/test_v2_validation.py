"""Checking an inference request against a model's V2 metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.errors import BadRequest, PayloadTooLarge
from service.v2.request import InferenceRequest, parse_request
from service.v2.validation import (
    ModelSpec,
    TensorSpec,
    WantedOutput,
    check_inputs,
    check_outputs,
)

SPEC = ModelSpec(
    name="tiny-pretrained",
    version="1",
    inputs=(TensorSpec("image", "UINT8", (-1, 1, 2, 2)),),
    outputs=(
        TensorSpec("probabilities", "FP32", (-1, 3)),
        TensorSpec("embedding", "FP32", (-1, 4)),
    ),
    labelled="probabilities",
    labels=("a", "b", "c"),
)


def _request(inputs: list[dict[str, Any]] | None = None, **fields: Any) -> InferenceRequest:
    if inputs is None:
        inputs = [
            {"name": "image", "datatype": "UINT8", "shape": [2, 1, 2, 2], "data": list(range(8))}
        ]
    return InferenceRequest.model_validate({"inputs": inputs, **fields})


def _image(**fields: Any) -> dict[str, Any]:
    return {"name": "image", "datatype": "UINT8", "shape": [1, 1, 2, 2], "data": [0] * 4, **fields}


def test_check_inputs_returns_the_image_batch() -> None:
    arrays = check_inputs(_request(), [None], SPEC, max_batch=8)
    assert arrays["image"].shape == (2, 1, 2, 2)
    assert arrays["image"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["image"].ravel(), np.arange(8))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([_image(name="pixels")], "unknown input 'pixels'; model 'tiny-pretrained' takes 'image'"),
        ([_image(), _image()], "input 'image' is given more than once"),
        ([], "missing input 'image'"),
        ([_image(datatype="FP32")], "has datatype 'FP32'; model 'tiny-pretrained' takes UINT8"),
        (
            [_image(shape=[1, 2, 2])],
            r"has shape \[1, 2, 2\]; model 'tiny-pretrained' takes \[-1, 1, 2, 2\]",
        ),
        ([_image(shape=[1, 3, 2, 2])], r"has shape \[1, 3, 2, 2\]"),
        ([_image(shape=[0, 1, 2, 2], data=[])], r"has shape \[0, 1, 2, 2\]"),
        ([_image(data=[0] * 5)], "holds 4 values, but data has 5"),
    ],
)
def test_check_inputs_names_what_does_not_fit(inputs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_inputs(_request(inputs), [None] * len(inputs), SPEC, max_batch=8)


def test_check_inputs_applies_the_batch_limit_before_decoding() -> None:
    inputs = [_image(shape=[9, 1, 2, 2], data="not decoded")]
    with pytest.raises(PayloadTooLarge, match="holds 9 images, over the limit of 8"):
        check_inputs(_request(inputs), [None], SPEC, max_batch=8)


def test_check_outputs_defaults_to_every_output() -> None:
    assert check_outputs(_request(), SPEC) == [
        WantedOutput("probabilities", binary=False),
        WantedOutput("embedding", binary=False),
    ]
    binary = _request(parameters={"binary_data_output": True})
    assert all(w.binary for w in check_outputs(binary, SPEC))


def test_check_outputs_reads_binary_data_and_classification() -> None:
    request = _request(
        parameters={"binary_data_output": True},
        outputs=[
            {"name": "embedding", "parameters": {"binary_data": False}},
            {"name": "probabilities", "parameters": {"classification": 2}},
        ],
    )
    assert check_outputs(request, SPEC) == [
        WantedOutput("embedding", binary=False),
        WantedOutput("probabilities", binary=True, class_count=2),
    ]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            [{"name": "logits"}],
            "unknown output 'logits'; model 'tiny-pretrained' returns 'probabilities', 'embedding'",
        ),
        ([{"name": "embedding"}, {"name": "embedding"}], "requested more than once"),
        (
            [{"name": "embedding", "parameters": {"classification": 2}}],
            "applies to 'probabilities' only",
        ),
        ([{"name": "probabilities", "parameters": {"classification": -2}}], "an integer from 0 to"),
        (
            [{"name": "probabilities", "parameters": {"binary_data": "yes"}}],
            "must be true or false",
        ),
    ],
)
def test_check_outputs_names_what_is_wrong(outputs: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_outputs(_request(outputs=outputs), SPEC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "must be a JSON object"),
        (b"{", "not valid JSON"),
        (b"{}", "inputs: Field required"),
        (
            b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, "2"]}]}',
            "inputs.0.shape.1",
        ),
        (b'{"inputs": [], "id": 7}', "id: Input should be a valid string"),
        (
            b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1], "dat": [1]}]}',
            "inputs.0.dat: Extra inputs are not permitted",
        ),
        (b'{"inputs": [], "outputs": [{"name": "x", "binary": 1}]}', "outputs.0.binary: Extra"),
        (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [' + b"9" * 5000 + b"]}]}",
            "not valid JSON: an integer has too many digits$",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [' + b"9" * 4000 + b"]}]}",
            r"inputs.0.shape.0: Input should be less than or equal to 2147483647$",
        ),
        (b'{"inputs": [], "parameters": {"p": NaN}}', "NaN is not a JSON number"),
        (b'{"inputs": [], "parameters": {"p": -Infinity}}', "-Infinity is not a JSON number"),
        (b'{"inputs": [], "parameters": {"p": [[1e999]]}}', "parameters: a number is too large"),
    ],
)
def test_parse_request_names_the_field(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_request(body)


def test_parse_request_ignores_unknown_top_level_fields() -> None:
    """As KServe's own server does: its SDK and others add fields of their own."""
    parsed = parse_request(
        b'{"inputs": [], "model_name": "m-v", "model_version": "1", "request_origin": "x"}'
    )
    assert (parsed.model_name, parsed.model_version) == ("m-v", "1")
    assert not hasattr(parsed, "request_origin")
