"""The Open Inference Protocol against the real gunicorn server, through ``tritonclient.http``.

KServe's SDK, which is too heavy for the dev install, runs from a virtualenv of its own in
``tests/compat/test_kserve_sdk.py``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from PIL import Image, ImageDraw
from tritonclient.utils import InferenceServerException

from tests.builders import write_repository
from tests.server import running_server

VARIANTS = ("pretrained", "baseline")


def _digit() -> np.ndarray:
    """A light-on-dark "7", drawn like an MNIST digit: ``uint8 [1, 1, 28, 28]``."""
    image = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    draw.line([(7, 7), (21, 7), (12, 22)], fill=255, width=3)
    return np.asarray(image, dtype=np.uint8).reshape(1, 1, 28, 28)


PIXELS = _digit()


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def triton(live_server: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=live_server.removeprefix("http://"))
    yield client
    client.close()


def _image_input(pixels: np.ndarray, binary: bool) -> httpclient.InferInput:
    image = httpclient.InferInput("image", list(pixels.shape), "UINT8")
    image.set_data_from_numpy(pixels, binary_data=binary)
    return image


def _v1_probabilities(live_server: str, variant: str, pixels: np.ndarray) -> np.ndarray:
    """The same pixels through v1 classify, as a PNG, every class returned in index order."""
    response = requests.post(
        f"{live_server}/v1/models/tiny/classify",
        params={"variant": variant, "top_k": 10, "invert": "false"},
        data=_png(pixels),
        headers={"Content-Type": "image/png"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    probabilities = np.zeros(10, dtype=np.float32)
    for entry in prediction["top_k"]:
        probabilities[entry["class_index"]] = entry["probability"]
    return probabilities[None, :]


def test_server_metadata_and_health(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "headstart"
    assert {"binary_tensor_data", "classification"} <= set(metadata["extensions"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_metadata_and_readiness(
    triton: httpclient.InferenceServerClient, variant: str
) -> None:
    name = f"tiny-{variant}"
    assert triton.is_model_ready(name)
    assert triton.is_model_ready(name, model_version="1")
    metadata = triton.get_model_metadata(name)
    assert metadata == triton.get_model_metadata(name, model_version="1")
    assert metadata["name"] == name
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 1, 28, 28]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in metadata["outputs"]] == [
        ("probabilities", "FP32", [-1, 10]),
        ("embedding", "FP32", [-1, 16]),
    ]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_probabilities_equal_v1_classify(
    triton: httpclient.InferenceServerClient, live_server: str, variant: str, binary: bool
) -> None:
    result = triton.infer(
        f"tiny-{variant}",
        [_image_input(PIXELS, binary)],
        outputs=[
            httpclient.InferRequestedOutput("probabilities", binary_data=binary),
            httpclient.InferRequestedOutput("embedding", binary_data=binary),
        ],
        request_id=f"{variant}-{binary}",
    )
    response = result.get_response()
    assert response["model_name"] == f"tiny-{variant}"
    assert response["id"] == f"{variant}-{binary}"
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (1, 10)
    np.testing.assert_array_equal(probabilities, _v1_probabilities(live_server, variant, PIXELS))
    assert result.as_numpy("embedding").shape == (1, 16)


def test_the_two_variants_answer_differently(triton: httpclient.InferenceServerClient) -> None:
    answers = [
        triton.infer(f"tiny-{v}", [_image_input(PIXELS, True)]).as_numpy("probabilities")
        for v in VARIANTS
    ]
    assert not np.array_equal(*answers)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_class_count_returns_the_top_classes(
    triton: httpclient.InferenceServerClient, variant: str, binary: bool
) -> None:
    batch = np.concatenate([PIXELS, 255 - PIXELS, PIXELS // 2])
    name = f"tiny-{variant}"
    full = triton.infer(name, [_image_input(batch, binary)]).as_numpy("probabilities")
    top = triton.infer(
        name,
        [_image_input(batch, binary)],
        outputs=[
            httpclient.InferRequestedOutput("probabilities", binary_data=binary, class_count=3)
        ],
    ).as_numpy("probabilities")
    assert top.shape == (3, 3)
    for row, entries in zip(full, top, strict=True):
        texts = [e.decode() if isinstance(e, bytes) else e for e in entries]
        indices = [int(t.split(":")[1]) for t in texts]
        assert indices == list(np.argsort(-row, kind="stable")[:3])
        for text in texts:
            score, index, label = text.split(":")
            assert np.float32(float(score)) == row[int(index)]
            assert label == index


def test_no_outputs_named_returns_every_output_in_binary(
    triton: httpclient.InferenceServerClient,
) -> None:
    result = triton.infer("tiny-baseline", [_image_input(PIXELS, False)])
    outputs = {o["name"]: o for o in result.get_response()["outputs"]}
    assert set(outputs) == {"probabilities", "embedding"}
    assert outputs["probabilities"]["parameters"]["binary_data_size"] == 10 * 4
    assert result.as_numpy("embedding").shape == (1, 16)


def test_compressed_requests(triton: httpclient.InferenceServerClient) -> None:
    plain = triton.infer("tiny-pretrained", [_image_input(PIXELS, True)])
    for algorithm in ("gzip", "deflate"):
        packed = triton.infer(
            "tiny-pretrained",
            [_image_input(PIXELS, True)],
            request_compression_algorithm=algorithm,
        )
        np.testing.assert_array_equal(
            packed.as_numpy("probabilities"), plain.as_numpy("probabilities")
        )


def _server_error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_unknown_model_and_version_are_404(triton: httpclient.InferenceServerClient) -> None:
    image = [_image_input(PIXELS, True)]
    for call, message in [
        (
            lambda: triton.infer("tiny-distilled", image),
            "unknown model 'tiny-distilled' (known: tiny-baseline, tiny-pretrained)",
        ),
        (
            lambda: triton.get_model_metadata("mnist-pretrained"),
            "unknown model 'mnist-pretrained' (known: tiny-baseline, tiny-pretrained)",
        ),
        (
            lambda: triton.infer("tiny-pretrained", image, model_version="2"),
            "model 'tiny-pretrained' has no version '2' (available: 1)",
        ),
    ]:
        error = _server_error(call)
        assert error.status() == "404"
        assert error.message() == message
    assert not triton.is_model_ready("tiny-distilled")


@pytest.mark.parametrize(
    ("name", "datatype", "pixels", "message"),
    [
        (
            "pixels",
            "UINT8",
            PIXELS,
            "unknown input 'pixels'; model 'tiny-pretrained' takes 'image'",
        ),
        (
            "image",
            "FP32",
            PIXELS.astype(np.float32),
            "input 'image' has datatype 'FP32'; model 'tiny-pretrained' takes UINT8",
        ),
        (
            "image",
            "UINT8",
            PIXELS.reshape(1, 28, 28),
            "input 'image' has shape [1, 28, 28]; model 'tiny-pretrained' takes [-1, 1, 28, 28]",
        ),
        (
            "image",
            "UINT8",
            np.zeros((1, 3, 28, 28), np.uint8),
            "input 'image' has shape [1, 3, 28, 28]",
        ),
    ],
)
def test_inputs_that_do_not_fit_the_metadata_are_400(
    triton: httpclient.InferenceServerClient,
    name: str,
    datatype: str,
    pixels: np.ndarray,
    message: str,
) -> None:
    tensor = httpclient.InferInput(name, list(pixels.shape), datatype)
    tensor.set_data_from_numpy(pixels)
    error = _server_error(lambda: triton.infer("tiny-pretrained", [tensor]))
    assert error.status() == "400"
    assert error.message().startswith(message)


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url, data=body, headers=headers or {}, timeout=10)


def _error(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


def test_data_length_that_does_not_match_the_shape_is_400(live_server: str) -> None:
    url = f"{live_server}/v2/models/tiny-pretrained/infer"
    image = {"name": "image", "datatype": "UINT8", "shape": [1, 1, 28, 28]}
    short = json.dumps({"inputs": [{**image, "data": [0] * 783}]}).encode()
    response = _post(url, short)
    assert response.status_code == 400
    assert (
        _error(response) == "input 'image': shape [1, 1, 28, 28] holds 784 values, but data has 783"
    )
    header = json.dumps({"inputs": [{**image, "parameters": {"binary_data_size": 700}}]}).encode()
    response = _post(
        url, header + bytes(700), {"Inference-Header-Content-Length": str(len(header))}
    )
    assert response.status_code == 400
    assert _error(response) == (
        "input 'image': binary_data_size is 700 bytes, but shape [1, 1, 28, 28] of UINT8 takes 784"
    )
    response = _post(url, b'{"inputs": [')
    assert response.status_code == 400
    assert _error(response).startswith("inference request is not valid JSON")


def test_unknown_routes_and_methods_answer_in_the_v2_shape(live_server: str) -> None:
    response = requests.get(f"{live_server}/v2/models/tiny-pretrained/infer", timeout=10)
    assert response.status_code == 405
    assert "use POST" in _error(response)
    response = requests.get(f"{live_server}/v2/repository/index", timeout=10)
    assert response.status_code == 405
    assert "use POST" in _error(response)
    # Loading and unloading models are admin routes, off without the admin token.
    load = "/v2/repository/models/tiny-pretrained/load"
    response = requests.post(f"{live_server}{load}", timeout=10)
    assert response.status_code == 403
    assert "HEADSTART_ADMIN_TOKEN" in _error(response)


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with small body and batch limits whose ``tiny-baseline`` failed to load."""
    repository = write_repository(tmp_path_factory.mktemp("v2-limited"))
    (repository / "tiny" / "baseline" / "model.onnx").write_bytes(b"not the exported model")
    env = {"HEADSTART_MAX_BODY_BYTES": "8192", "HEADSTART_MAX_BATCH": "4"}
    with running_server(repository, env) as url:
        yield url


def test_limits_apply_to_v2(limited_server: str) -> None:
    client = httpclient.InferenceServerClient(url=limited_server.removeprefix("http://"))
    try:
        four = np.repeat(PIXELS, 4, axis=0)
        assert client.infer("tiny-pretrained", [_image_input(four, True)]).as_numpy(
            "probabilities"
        ).shape == (4, 10)
        error = _server_error(
            lambda: client.infer(
                "tiny-pretrained", [_image_input(np.repeat(PIXELS, 5, axis=0), True)]
            )
        )
        assert error.status() == "413"
        assert error.message() == "input 'image' holds 5 images, over the limit of 4"
        error = _server_error(
            lambda: client.infer(
                "tiny-pretrained",
                [_image_input(255 - four, False)],  # ~12 kB of JSON
            )
        )
        assert error.status() == "413"
        assert error.message() == "request body is over the limit of 8192 bytes"
    finally:
        client.close()


def test_a_variant_that_failed_to_load_is_503(limited_server: str) -> None:
    client = httpclient.InferenceServerClient(url=limited_server.removeprefix("http://"))
    try:
        assert client.is_server_ready()
        assert client.is_model_ready("tiny-pretrained")
        assert not client.is_model_ready("tiny-baseline")
        error = _server_error(lambda: client.infer("tiny-baseline", [_image_input(PIXELS, True)]))
        assert error.status() == "503"
        assert error.message().startswith("model 'tiny-baseline' is not ready: ")
        assert "sha256" in error.message()
    finally:
        client.close()


def test_a_server_without_usable_models_is_not_ready(tmp_path: Path) -> None:
    (tmp_path / "empty" / "tiny").mkdir(parents=True)  # a model with no variant in it
    with running_server(tmp_path / "empty") as url:
        client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
        try:
            assert client.is_server_live()
            assert not client.is_server_ready()
            error = _server_error(lambda: client.get_model_metadata("tiny-pretrained"))
            assert error.status() == "503"
            assert error.message().startswith("no usable model in the model repository: ")
        finally:
            client.close()
