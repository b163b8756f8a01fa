"""tritonclient.grpc against the real server (2 workers): health, metadata, inference with
typed contents and raw contents, Triton's configuration, statistics and repository index, an
experiment-routed request, and the standard gRPC health protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.compat.conftest import ADMIN

MODEL = "tiny-pretrained"


@pytest.fixture
def triton(compat_grpc: str) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(url=compat_grpc)
    yield client
    client.close()


@pytest.fixture
def stub(compat_grpc: str) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(compat_grpc) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def _http_probabilities(url: str, pixels: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        image = httpclient.InferInput("image", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels)
        return client.infer(MODEL, [image]).as_numpy("probabilities")
    finally:
        client.close()


def _infer(
    client: grpcclient.InferenceServerClient, pixels: np.ndarray, **kw: object
) -> grpcclient.InferResult:
    image = grpcclient.InferInput("image", list(pixels.shape), "UINT8")
    image.set_data_from_numpy(pixels)
    return client.infer(MODEL, [image], **kw)


def test_health_and_metadata(triton: grpcclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    assert not triton.is_model_ready("tiny-none")
    metadata = triton.get_server_metadata(as_json=True)
    assert metadata["name"] == "headstart"
    assert {"model_configuration", "statistics", "model_repository"} <= set(metadata["extensions"])
    model = triton.get_model_metadata(MODEL, as_json=True)
    assert model["inputs"] == [
        {"name": "image", "datatype": "UINT8", "shape": ["-1", "1", "28", "28"]}
    ]
    assert [o["name"] for o in model["outputs"]] == ["probabilities", "embedding"]
    with pytest.raises(InferenceServerException, match="unknown model 'tiny-none'") as caught:
        triton.get_model_metadata("tiny-none")
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_raw_contents_answer_as_http_does(
    triton: grpcclient.InferenceServerClient, compat_server: str, pixels: np.ndarray
) -> None:
    result = _infer(
        triton,
        pixels,
        outputs=[grpcclient.InferRequestedOutput(n) for n in ("probabilities", "embedding")],
        request_id="raw-1",
    )
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (MODEL, "1", "raw-1")
    assert len(response.raw_output_contents) == 2
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), _http_probabilities(compat_server, pixels)
    )
    assert result.as_numpy("embedding").shape == (3, 16)


def test_an_answer_always_has_an_id(
    triton: grpcclient.InferenceServerClient, pixels: np.ndarray
) -> None:
    assert _infer(triton, pixels[:1]).get_response().id


def test_typed_contents_answer_in_contents(
    stub: service_pb2_grpc.GRPCInferenceServiceStub, compat_server: str, pixels: np.ndarray
) -> None:
    tensor = service_pb2.ModelInferRequest.InferInputTensor(
        name="image", datatype="UINT8", shape=list(pixels.shape)
    )
    tensor.contents.uint_contents.extend(pixels.ravel().tolist())
    request = service_pb2.ModelInferRequest(model_name=MODEL, inputs=[tensor])
    request.outputs.add(name="probabilities")
    response = stub.ModelInfer(request, timeout=30)
    assert not response.raw_output_contents
    (out,) = response.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("probabilities", "FP32", [3, 10])
    got = np.asarray(out.contents.fp32_contents, dtype=np.float32).reshape(3, 10)
    np.testing.assert_array_equal(got, _http_probabilities(compat_server, pixels))


def test_classification_extension(
    triton: grpcclient.InferenceServerClient, pixels: np.ndarray
) -> None:
    result = _infer(
        triton, pixels, outputs=[grpcclient.InferRequestedOutput("probabilities", class_count=2)]
    )
    top = result.as_numpy("probabilities")
    assert top.shape == (3, 2)
    score, index, label = top[0, 0].decode().split(":")
    assert 0.0 <= float(score) <= 1.0
    assert index.isdigit()
    assert label


def test_bad_requests_get_invalid_argument(
    triton: grpcclient.InferenceServerClient, pixels: np.ndarray
) -> None:
    with pytest.raises(InferenceServerException, match=r"shape \[3, 1, 28, 14\]") as caught:
        _infer(triton, np.ascontiguousarray(pixels[:, :, :, :14]))
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="unknown output 'nope'"):
        _infer(triton, pixels, outputs=[grpcclient.InferRequestedOutput("nope")])


def test_model_config(triton: grpcclient.InferenceServerClient) -> None:
    config = triton.get_model_config(MODEL, as_json=True)["config"]
    assert (config["name"], config["platform"], config["max_batch_size"]) == (
        MODEL,
        "onnxruntime_onnx",
        64,
    )
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("image", "TYPE_UINT8", ["1", "28", "28"])
    ]
    assert [t["name"] for t in config["output"]] == ["probabilities", "embedding"]


def test_statistics_count_grpc_requests(
    triton: grpcclient.InferenceServerClient, pixels: np.ndarray
) -> None:
    def stat() -> dict:
        (entry,) = triton.get_inference_statistics(MODEL, as_json=True)["model_stats"]
        return entry

    before = stat()
    for _ in range(3):
        _infer(triton, pixels)
    with pytest.raises(InferenceServerException):
        _infer(triton, np.ascontiguousarray(pixels[:, :, :14]))
    after = stat()
    stats, old = after["inference_stats"], before["inference_stats"]
    assert int(stats["success"]["count"]) - int(old["success"].get("count", 0)) == 3
    assert int(stats["fail"]["count"]) - int(old["fail"].get("count", 0)) == 1
    assert int(after["inference_count"]) - int(before.get("inference_count", 0)) == 9
    everything = triton.get_inference_statistics(as_json=True)["model_stats"]
    assert sorted(s["name"] for s in everything) == ["tiny-baseline", "tiny-pretrained"]


def test_repository_index_and_no_loading(triton: grpcclient.InferenceServerClient) -> None:
    index = triton.get_model_repository_index(as_json=True)["models"]
    states = {entry["name"]: entry["state"] for entry in index}
    assert states["tiny-pretrained"] == "READY"
    assert states["broken-baseline"] == "UNAVAILABLE"
    for call in (triton.load_model, triton.unload_model):
        with pytest.raises(InferenceServerException, match="not supported") as caught:
            call(MODEL)
        assert caught.value.status() == "StatusCode.UNIMPLEMENTED"


def test_an_experiment_routes_a_grpc_request(
    triton: grpcclient.InferenceServerClient, compat_server: str, pixels: np.ndarray
) -> None:
    definition = {
        "name": "grpc-split",
        "model": "tiny",
        "mode": "split",
        "arms": [
            {"name": "a", "variant": "pretrained", "weight": 1},
            {"name": "b", "variant": "baseline", "weight": 1},
        ],
    }
    created = requests.post(
        f"{compat_server}/v1/experiments",
        json=definition,
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    arms = set()
    for attempt in range(2):
        result = _infer(
            triton,
            pixels[:1],
            parameters={"experiment": "grpc-split", "unit": "user-7"},
            request_id=f"routed-{attempt}",
        )
        parameters = result.get_response().parameters
        assert parameters["experiment_name"].string_param == "grpc-split"
        assert parameters["experiment_assignment"].string_param == "unit"
        arms.add(parameters["experiment_arm"].string_param)
    assert len(arms) == 1  # a unit keeps its arm
    with pytest.raises(InferenceServerException, match="no experiment named 'nope'") as caught:
        _infer(triton, pixels[:1], parameters={"experiment": "nope"})
    assert caught.value.status() == "StatusCode.NOT_FOUND"


def test_standard_health_protocol(compat_grpc: str) -> None:
    with grpc.insecure_channel(compat_grpc) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", "inference.GRPCInferenceService"):
            answer = check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as caught:
            check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_asyncio_client(compat_grpc: str, compat_server: str, pixels: np.ndarray) -> None:
    import tritonclient.grpc.aio as aioclient

    async def calls() -> tuple[bool, np.ndarray]:
        client = aioclient.InferenceServerClient(url=compat_grpc)
        try:
            image = aioclient.InferInput("image", list(pixels.shape), "UINT8")
            image.set_data_from_numpy(pixels)
            result = await client.infer(MODEL, [image])
            return await client.is_model_ready(MODEL), result.as_numpy("probabilities")
        finally:
            await client.close()

    ready, probabilities = asyncio.run(calls())
    assert ready
    np.testing.assert_array_equal(probabilities, _http_probabilities(compat_server, pixels))
