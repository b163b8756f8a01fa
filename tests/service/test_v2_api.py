"""The /v2 routes through Flask's test client; tests/http/test_v2_*.py use real gunicorn."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.http import InferResult

from service import create_app
from service.runtime import ModelStore
from service.settings import Settings
from tests.builders import write_repository

PIXELS = np.random.default_rng(7).integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)


def _app(repository: Path, **settings: Any) -> Flask:
    return create_app(Settings(model_repository=repository, **settings))


@pytest.fixture
def client(repository: Path) -> FlaskClient:
    return _app(repository).test_client()


def _json_request(pixels: np.ndarray = PIXELS, **fields: Any) -> dict[str, Any]:
    image = {"name": "image", "datatype": "UINT8", "shape": list(pixels.shape)}
    return {"inputs": [{**image, "data": pixels.ravel().tolist()}], **fields}


def _binary_request(pixels: np.ndarray = PIXELS, **fields: Any) -> tuple[bytes, dict[str, str]]:
    raw = pixels.tobytes()
    image = {
        "name": "image",
        "datatype": "UINT8",
        "shape": list(pixels.shape),
        "parameters": {"binary_data_size": len(raw)},
    }
    header = json.dumps({"inputs": [image], **fields}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


def _expected(repository: Path, variant: str) -> dict[str, np.ndarray]:
    return ModelStore.load(repository).variant("tiny", variant).run(PIXELS)


def _error(response: Any) -> str:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)
    return body["error"]


def test_server_metadata_lists_the_extensions(client: FlaskClient) -> None:
    body = client.get("/v2").get_json()
    assert body["name"] == "headstart"
    assert body["version"]
    assert set(body["extensions"]) == {
        "binary_tensor_data",
        "classification",
        "model_configuration",
        "statistics",
        "model_repository",
    }


def test_health(client: FlaskClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


@pytest.mark.parametrize("variant", ["pretrained", "baseline"])
@pytest.mark.parametrize("suffix", ["", "/versions/1"])
def test_model_metadata_and_readiness(client: FlaskClient, variant: str, suffix: str) -> None:
    name = f"tiny-{variant}"
    body = client.get(f"/v2/models/{name}{suffix}").get_json()
    assert body == {
        "name": name,
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, 1, 28, 28]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "embedding", "datatype": "FP32", "shape": [-1, 16]},
        ],
    }
    assert client.get(f"/v2/models/{name}{suffix}/ready").status_code == 200


@pytest.mark.parametrize("variant", ["pretrained", "baseline"])
def test_json_infer_returns_what_the_model_computes(
    client: FlaskClient, repository: Path, variant: str
) -> None:
    response = client.post(f"/v2/models/tiny-{variant}/infer", json=_json_request(id="req-1"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["model_name"] == f"tiny-{variant}"
    assert body["model_version"] == "1"
    assert body["id"] == "req-1"
    expected = _expected(repository, variant)
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == ["probabilities", "embedding"]
    for name, array in expected.items():
        assert outputs[name]["datatype"] == "FP32"
        assert outputs[name]["shape"] == list(array.shape)
        got = np.array(outputs[name]["data"], dtype=np.float32).reshape(array.shape)
        np.testing.assert_array_equal(got, array)


def test_nested_json_data_gives_the_same_answer(client: FlaskClient) -> None:
    flat = client.post("/v2/models/tiny-pretrained/infer", json=_json_request()).get_json()
    nested_request = _json_request()
    nested_request["inputs"][0]["data"] = PIXELS.tolist()
    nested = client.post("/v2/models/tiny-pretrained/infer", json=nested_request).get_json()
    assert nested["outputs"] == flat["outputs"]


def test_binary_infer_both_ways(client: FlaskClient, repository: Path) -> None:
    body, headers = _binary_request(
        outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}]
    )
    response = client.post("/v2/models/tiny-baseline/versions/1/infer", data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    result = InferResult.from_response_body(response.get_data(), header_length=length)
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), _expected(repository, "baseline")["probabilities"]
    )
    assert result.as_numpy("embedding") is None  # only what was asked for


def test_classification_extension(client: FlaskClient, repository: Path) -> None:
    request = _json_request(
        outputs=[{"name": "probabilities", "parameters": {"classification": 3}}]
    )
    body = client.post("/v2/models/tiny-pretrained/infer", json=request).get_json()
    (output,) = body["outputs"]
    assert output["datatype"] == "BYTES"
    assert output["shape"] == [3, 3]
    probabilities = _expected(repository, "pretrained")["probabilities"]
    rows = np.array(output["data"]).reshape(3, 3)
    for row, strings in zip(probabilities, rows, strict=True):
        indices = [int(s.split(":")[1]) for s in strings]
        assert indices == list(np.argsort(-row, kind="stable")[:3])
        for text in strings:
            score, index, label = text.split(":")
            assert np.float32(float(score)) == row[int(index)]
            assert label == index  # the tiny model's class names are "0".."9"


def test_request_parameters_come_back_but_protocol_ones_do_not(client: FlaskClient) -> None:
    request = _json_request(parameters={"trace": "abc", "binary_data_output": False})
    response = client.post("/v2/models/tiny-pretrained/infer", json=request)
    body = response.get_json()
    assert body["parameters"] == {"trace": "abc"}
    # A request without an id is answered under its request id: every answer has one.
    assert body["id"] == response.headers["X-Request-ID"]


def test_loading_models_is_off_without_the_admin_token(client: FlaskClient) -> None:
    for action in ("load", "unload"):
        response = client.post(f"/v2/repository/models/tiny-pretrained/{action}")
        assert response.status_code == 403
        assert "HEADSTART_ADMIN_TOKEN" in response.get_json()["error"]


@pytest.mark.parametrize(
    ("name", "target"), [("tiny", "tiny-pretrained"), ("tiny-baseline", "tiny-baseline")]
)
def test_a_kserve_v1_request_is_pointed_to_v2(client: FlaskClient, name: str, target: str) -> None:
    response = client.post(f"/v1/models/{name}:predict", json={"instances": [[0]]})
    assert response.status_code == 404
    message = response.get_json()["error"]["message"]
    assert f"POST /v2/models/{target}/infer" in message
    assert "KServe's V1 protocol" in message


def test_gzip_request_body(client: FlaskClient) -> None:
    plain = client.post("/v2/models/tiny-pretrained/infer", json=_json_request()).get_json()
    body, headers = _binary_request()
    response = client.post(
        "/v2/models/tiny-pretrained/infer",
        data=gzip.compress(body),
        headers={**headers, "Content-Encoding": "gzip"},
    )
    assert response.get_json()["outputs"] == plain["outputs"]


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        (
            "GET",
            "/v2/models/tiny-nope",
            404,
            "unknown model 'tiny-nope' (known: tiny-baseline, tiny-pretrained)",
        ),
        ("GET", "/v2/models/tiny/ready", 404, "unknown model 'tiny'"),
        ("POST", "/v2/models/mnist-pretrained/infer", 404, "unknown model 'mnist-pretrained'"),
        ("GET", "/v2/models/tiny-pretrained/versions/2", 404, "has no version '2' (available: 1)"),
        ("POST", "/v2/models/tiny-baseline/versions/9/infer", 404, "has no version '9'"),
        (
            "GET",
            "/v2/models/tiny-pretrained/infer",
            405,
            "GET is not allowed on /v2/models/tiny-pretrained/infer (use POST)",
        ),
        ("POST", "/v2/models/tiny-pretrained", 405, "(use GET)"),
        ("GET", "/v2/models", 404, "no V2 endpoint /v2/models"),
        ("GET", "/v2/", 404, "no V2 endpoint /v2/"),
    ],
)
def test_routing_errors(
    client: FlaskClient, method: str, path: str, status: int, message: str
) -> None:
    response = client.open(path, method=method, json=_json_request())
    assert response.status_code == status
    assert message in _error(response)


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        (
            {"inputs": [{"name": "img", "datatype": "UINT8", "shape": [1], "data": [1]}]},
            "unknown input 'img'",
        ),
        ({"inputs": []}, "missing input 'image'"),
        (_json_request(PIXELS.astype(np.float32)) | {"id": "x"}, "got floating-point numbers"),
        (
            {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0]}]},
            "has shape [1, 28, 28]",
        ),
        (_json_request(outputs=[{"name": "logits"}]), "unknown output 'logits'"),
    ],
)
def test_bad_requests_are_400_with_the_reason(
    client: FlaskClient, request_body: dict[str, Any], message: str
) -> None:
    response = client.post("/v2/models/tiny-pretrained/infer", json=request_body)
    assert response.status_code == 400
    assert message in _error(response)


def test_binary_data_that_does_not_add_up_is_400(client: FlaskClient) -> None:
    body, headers = _binary_request()
    response = client.post("/v2/models/tiny-pretrained/infer", data=body[:-1], headers=headers)
    assert response.status_code == 400
    assert "runs past the end of the body" in _error(response)
    headers["Inference-Header-Content-Length"] = "-3"
    response = client.post("/v2/models/tiny-pretrained/infer", data=body, headers=headers)
    assert response.status_code == 400
    assert "Inference-Header-Content-Length is -3" in _error(response)


def test_body_and_batch_limits_apply(repository: Path) -> None:
    client = _app(repository, max_body_bytes=4096, max_batch=2).test_client()
    body, headers = _binary_request(PIXELS[:2])
    assert (
        client.post("/v2/models/tiny-pretrained/infer", data=body, headers=headers).status_code
        == 200
    )
    too_long, headers = _binary_request(PIXELS.repeat(2, axis=0))
    response = client.post("/v2/models/tiny-pretrained/infer", data=too_long, headers=headers)
    assert response.status_code == 413
    assert _error(response) == "request body is over the limit of 4096 bytes"
    too_many, headers = _binary_request(PIXELS)  # 3 images, under the body limit
    assert len(too_many) < 4096
    response = client.post("/v2/models/tiny-pretrained/infer", data=too_many, headers=headers)
    assert response.status_code == 413
    assert "holds 3 images, over the limit of 2" in _error(response)


def test_a_variant_that_failed_to_load_is_503_with_its_reason(tmp_path: Path) -> None:
    repository = write_repository(tmp_path / "repo")
    (repository / "tiny" / "baseline" / "model.onnx").write_bytes(b"tampered")
    client = _app(repository).test_client()
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/tiny-pretrained/ready").status_code == 200
    for path in ("/v2/models/tiny-baseline/ready", "/v2/models/tiny-baseline"):
        response = client.get(path)
        assert response.status_code == 503
        assert _error(response).startswith("model 'tiny-baseline' is not ready: ")
        assert "sha256" in _error(response)


def test_without_models_everything_but_liveness_is_503(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    client = _app(tmp_path / "empty").test_client()
    assert client.get("/v2/health/live").status_code == 200
    for method, path in [
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/tiny-pretrained/ready"),
        ("POST", "/v2/models/tiny-pretrained/infer"),
    ]:
        response = client.open(path, method=method, json=_json_request())
        assert response.status_code == 503
        assert "no models in" in _error(response)


def _sample(client: FlaskClient, name: str, **labels: str) -> float:
    """Sum every sample of ``name`` whose labels include ``labels``."""
    text = client.get("/metrics").get_data(as_text=True)
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_v2_requests_show_in_the_metrics(client: FlaskClient) -> None:
    endpoint = "/v2/models/<name>/infer"
    before_images = _sample(client, "headstart_images_total", endpoint=endpoint)
    labelled = {"endpoint": endpoint, "model": "tiny", "variant": "pretrained"}
    before_labelled = _sample(client, "headstart_images_total", **labelled)
    before_errors = _sample(
        client, "headstart_request_errors_total", endpoint=endpoint, code="model_not_found"
    )
    before_ok = _sample(client, "headstart_requests_total", endpoint=endpoint, status="200")
    assert client.post("/v2/models/tiny-pretrained/infer", json=_json_request()).status_code == 200
    assert client.post("/v2/models/tiny-x/infer", json=_json_request()).status_code == 404
    assert _sample(client, "headstart_images_total", endpoint=endpoint) == before_images + 3
    assert _sample(client, "headstart_images_total", **labelled) == before_labelled + 3
    assert (
        _sample(client, "headstart_request_errors_total", endpoint=endpoint, code="model_not_found")
        == before_errors + 1
    )
    assert (
        _sample(client, "headstart_requests_total", endpoint=endpoint, status="200")
        == before_ok + 1
    )
