"""tritonclient.http against the real server (2 workers): metadata, inference in JSON and
binary, Triton's model configuration, statistics and repository index."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

MODEL = "tiny-pretrained"


@pytest.fixture
def triton(compat_server: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=compat_server.removeprefix("http://"))
    yield client
    client.close()


def _infer(
    client: httpclient.InferenceServerClient, pixels: np.ndarray, binary: bool, **kw: Any
) -> httpclient.InferResult:
    image = httpclient.InferInput("image", list(pixels.shape), "UINT8")
    image.set_data_from_numpy(pixels, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
    return client.infer(MODEL, [image], outputs=outputs, **kw)


def test_metadata_and_both_encodings(
    triton: httpclient.InferenceServerClient, pixels: np.ndarray
) -> None:
    assert triton.is_server_ready()
    assert {"model_configuration", "statistics", "model_repository"} <= set(
        triton.get_server_metadata()["extensions"]
    )
    assert triton.get_model_metadata(MODEL)["inputs"][0]["shape"] == [-1, 1, 28, 28]
    as_json = _infer(triton, pixels, False).as_numpy("probabilities")
    as_binary = _infer(triton, pixels, True).as_numpy("probabilities")
    assert as_json.shape == (3, 10)
    np.testing.assert_array_equal(as_json, as_binary)


def test_model_config(triton: httpclient.InferenceServerClient) -> None:
    config = triton.get_model_config(MODEL)
    assert config == triton.get_model_config(MODEL, model_version="1")
    assert (config["name"], config["platform"], config["max_batch_size"]) == (
        MODEL,
        "onnxruntime_onnx",
        64,
    )
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("image", "TYPE_UINT8", [1, 28, 28])
    ]
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["output"]] == [
        ("probabilities", "TYPE_FP32", [10]),
        ("embedding", "TYPE_FP32", [16]),
    ]
    with pytest.raises(InferenceServerException, match="unknown model 'tiny-none'"):
        triton.get_model_config("tiny-none")


def _workers(log: Path, marker: str) -> set[str]:
    return set(re.findall(rf"request_id={marker}-\d+ worker=(<\d+>)", log.read_text()))


def _stat(client: httpclient.InferenceServerClient) -> dict[str, Any]:
    (stat,) = client.get_inference_statistics(MODEL)["model_stats"]
    return stat


def test_statistics_sum_every_worker(
    compat_server: str, compat_log: Path, pixels: np.ndarray
) -> None:
    url = compat_server.removeprefix("http://")
    probe = httpclient.InferenceServerClient(url=url)
    before = _stat(probe)
    sent = 0
    # A new connection per request, until the access log shows both workers took some.
    while sent < 8 or (len(_workers(compat_log, "stats")) < 2 and sent < 200):
        client = httpclient.InferenceServerClient(url=url)
        _infer(client, pixels, True, headers={"X-Request-ID": f"stats-{sent}"})
        client.close()
        sent += 1
    assert len(_workers(compat_log, "stats")) == 2
    with pytest.raises(InferenceServerException):
        _infer(probe, pixels[:, :, :14], True)
    # Whichever worker answers, it reports every worker's counts.
    for _ in range(4):
        after = _stat(probe)
        stats, old = after["inference_stats"], before["inference_stats"]
        assert stats["success"]["count"] - old["success"]["count"] == sent
        assert stats["fail"]["count"] - old["fail"]["count"] == 1
        assert after["inference_count"] - before["inference_count"] == 3 * sent
        assert after["execution_count"] - before["execution_count"] == sent
        assert stats["compute_infer"]["ns"] > old["compute_infer"]["ns"]
        assert stats["success"]["ns"] - old["success"]["ns"] >= (
            stats["compute_infer"]["ns"] - old["compute_infer"]["ns"]
        )
    everything = probe.get_inference_statistics()["model_stats"]
    assert sorted(s["name"] for s in everything) == ["tiny-baseline", "tiny-pretrained"]
    probe.close()


def test_repository_index(triton: httpclient.InferenceServerClient) -> None:
    index = triton.get_model_repository_index()
    states = {entry["name"]: entry for entry in index}
    assert {name: entry["state"] for name, entry in states.items()} == {
        "broken-baseline": "UNAVAILABLE",
        "broken-pretrained": "UNAVAILABLE",
        "tiny-baseline": "READY",
        "tiny-pretrained": "READY",
    }
    assert "schema_version None is not supported" in states["broken-baseline"]["reason"]
    assert states["broken-pretrained"]["reason"] == "variant 'pretrained' is missing"
    assert states["tiny-pretrained"]["reason"] == ""
