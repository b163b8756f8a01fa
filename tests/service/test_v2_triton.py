"""Triton's configuration, statistics and repository-index routes, and the fields other
implementations send, through Flask's test client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from service import create_app
from service.settings import Settings
from tests.builders import write_repository

PIXELS = np.random.default_rng(3).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)


@pytest.fixture
def client(repository: Path) -> FlaskClient:
    return create_app(Settings(model_repository=repository, max_batch=32)).test_client()


def _request(**fields: Any) -> dict[str, Any]:
    image = {"name": "image", "datatype": "UINT8", "shape": list(PIXELS.shape)}
    return {"inputs": [{**image, "data": PIXELS.ravel().tolist()}], **fields}


def test_fields_kserve_and_others_send_are_accepted(client: FlaskClient) -> None:
    body = _request(model_name="tiny-baseline", model_version="1", request_origin="sdk")
    response = client.post("/v2/models/tiny-baseline/infer", json=body)
    assert response.status_code == 200, response.get_json()
    plain = client.post("/v2/models/tiny-baseline/infer", json=_request())
    assert response.get_json()["outputs"] == plain.get_json()["outputs"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"model_name": "tiny-pretrained"},
            "model_name 'tiny-pretrained' in the body does not match the URL's 'tiny-baseline'",
        ),
        ({"model_version": "7"}, "model_version '7' in the body does not match"),
        ({"model_name": 3}, "model_name: Input should be a valid string"),
    ],
)
def test_a_body_naming_another_model_is_400(
    client: FlaskClient, fields: dict[str, Any], message: str
) -> None:
    response = client.post("/v2/models/tiny-baseline/infer", json=_request(**fields))
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_tensors_stay_strict(client: FlaskClient) -> None:
    body = _request()
    body["inputs"][0]["datatyp"] = "UINT8"
    response = client.post("/v2/models/tiny-baseline/infer", json=body)
    assert response.status_code == 400
    assert "inputs.0.datatyp: Extra inputs are not permitted" in response.get_json()["error"]


@pytest.mark.parametrize(
    "path", ["/v2/models/tiny-pretrained", "/v2/models/tiny-pretrained/versions/1"]
)
def test_model_config_in_tritons_form(client: FlaskClient, path: str) -> None:
    config = client.get(f"{path}/config").get_json()
    assert config["name"] == "tiny-pretrained"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 32
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("image", "TYPE_UINT8", [1, 28, 28])
    ]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["output"]] == [
        ("probabilities", "TYPE_FP32", [10]),
        ("embedding", "TYPE_FP32", [16]),
    ]


def test_config_has_the_types_perf_analyzer_reads(client: FlaskClient) -> None:
    config = client.get("/v2/models/tiny-baseline/config").get_json()
    assert isinstance(config["model_transaction_policy"]["decoupled"], bool)
    for tensor in config["input"]:
        assert isinstance(tensor["is_shape_tensor"], bool)
        assert isinstance(tensor["optional"], bool)
    for tensor in config["output"]:
        assert isinstance(tensor["is_shape_tensor"], bool)
    # Neither sequence nor dynamic batching: perf_analyzer takes the scheduler as none.
    assert "sequence_batching" not in config
    assert "dynamic_batching" not in config


def test_config_describes_dynamic_batching_when_on(repository: Path) -> None:
    settings = Settings(model_repository=repository, batch_max_size=8, batch_max_wait_ms=2.5)
    config = create_app(settings).test_client().get("/v2/models/tiny-baseline/config").get_json()
    assert config["dynamic_batching"] == {
        "preferred_batch_size": [8],
        "max_queue_delay_microseconds": 2500,
    }


def test_config_of_unknown_model_or_version_is_404(client: FlaskClient) -> None:
    assert client.get("/v2/models/tiny-distilled/config").status_code == 404
    response = client.get("/v2/models/tiny-pretrained/versions/2/config")
    assert response.status_code == 404
    assert "has no version '2'" in response.get_json()["error"]


def _stat(client: FlaskClient, name: str) -> dict[str, Any]:
    (stat,) = client.get(f"/v2/models/{name}/stats").get_json()["model_stats"]
    return stat


def test_statistics_count_requests_runs_and_times(client: FlaskClient) -> None:
    # One registry per process, shared by every app in it: compare before with after.
    before = _stat(client, "tiny-pretrained")
    untouched = _stat(client, "tiny-baseline")
    for _ in range(3):
        assert client.post("/v2/models/tiny-pretrained/infer", json=_request()).status_code == 200
    bad = _request()
    bad["inputs"][0]["shape"] = [2, 28, 28]
    assert client.post("/v2/models/tiny-pretrained/infer", json=bad).status_code == 400
    assert client.post("/v1/models/tiny/classify?variant=pretrained", json={"images": ["@"]})
    after = _stat(client, "tiny-pretrained")
    stats, old = after["inference_stats"], before["inference_stats"]
    assert stats["success"]["count"] - old["success"]["count"] == 3
    assert stats["fail"]["count"] - old["fail"]["count"] == 2
    assert after["execution_count"] - before["execution_count"] == 3
    assert after["inference_count"] - before["inference_count"] == 3 * len(PIXELS)
    assert stats["compute_infer"]["ns"] > old["compute_infer"]["ns"]
    # Other apps in this process run models too, so compare what these requests added.
    assert (stats["success"]["ns"] - old["success"]["ns"]) >= (
        stats["compute_infer"]["ns"] - old["compute_infer"]["ns"]
    )
    assert stats["queue"]["ns"] == old["queue"]["ns"]  # no dynamic batching here
    assert after["last_inference"] > 0
    assert _stat(client, "tiny-baseline") == untouched


def test_statistics_of_every_model(client: FlaskClient) -> None:
    stats = client.get("/v2/models/stats").get_json()["model_stats"]
    assert sorted(s["name"] for s in stats) == ["tiny-baseline", "tiny-pretrained"]
    assert client.get("/v2/models/tiny-nope/stats").status_code == 404


def test_repository_index_names_unavailable_entries(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo")
    (repo / "tiny" / "baseline" / "model.onnx").write_bytes(b"not a model")
    client = create_app(Settings(model_repository=repo)).test_client()
    index = client.post("/v2/repository/index").get_json()
    assert [(e["name"], e["state"]) for e in index] == [
        ("tiny-baseline", "UNAVAILABLE"),
        ("tiny-pretrained", "READY"),
    ]
    assert "sha256" in index[0]["reason"]
    ready = client.post("/v2/repository/index", json={"ready": True}).get_json()
    assert [e["name"] for e in ready] == ["tiny-pretrained"]
    response = client.post("/v2/repository/index", data=json.dumps({"ready": "yes"}))
    assert response.status_code == 400
    assert "'ready' must be true or false" in response.get_json()["error"]


def test_extensions_are_advertised(client: FlaskClient) -> None:
    extensions = set(client.get("/v2").get_json()["extensions"])
    assert {"model_configuration", "statistics", "model_repository"} <= extensions


def test_with_nothing_served_the_index_still_answers(tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo")
    for variant in ("pretrained", "baseline"):
        (repo / "tiny" / variant / "model.onnx").write_bytes(b"not a model")
    client = create_app(Settings(model_repository=repo)).test_client()
    index = client.post("/v2/repository/index").get_json()
    assert [(e["name"], e["state"]) for e in index] == [
        ("tiny-baseline", "UNAVAILABLE"),
        ("tiny-pretrained", "UNAVAILABLE"),
    ]
    response = client.get("/v2/models/stats")
    assert response.status_code == 503
    assert "no usable model" in response.get_json()["error"]
