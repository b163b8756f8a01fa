"""KServe's own gRPC client (``InferenceGRPCClient``, ``protocolVersion: grpc-v2``) against the
real server: readiness, inference with typed and raw contents, an experiment-routed request,
and metadata parsed by KServe's copy of the protocol's messages.

The SDK runs from its cached virtualenv (``tests.compat.tools``), as the REST test's does.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from tests.compat.conftest import ADMIN
from tests.compat.tools import KSERVE, tool_python

pytestmark = pytest.mark.system

SCRIPT = Path(__file__).with_name("kserve_grpc_calls.py")
EXPERIMENT = "kserve-grpc-split"


def _http_probabilities(url: str, model: str, pixels: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        image = httpclient.InferInput("image", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels)
        return client.infer(model, [image]).as_numpy("probabilities")
    finally:
        client.close()


@pytest.fixture(scope="module")
def experiment(compat_server: str) -> str:
    definition = {
        "name": EXPERIMENT,
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
    return EXPERIMENT


@pytest.mark.parametrize("variant", ["pretrained", "baseline"])
def test_kserve_grpc_client(
    compat_server: str,
    compat_grpc: str,
    experiment: str,
    pixels: np.ndarray,
    tmp_path: Path,
    variant: str,
) -> None:
    python = tool_python(KSERVE)
    model = f"tiny-{variant}"
    np.save(tmp_path / "pixels.npy", pixels)
    out = tmp_path / "out.json"
    command = [str(python), str(SCRIPT), compat_grpc, model, experiment]
    run = subprocess.run(
        [*command, str(tmp_path / "pixels.npy"), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["live"], result["ready"], result["model_ready"]) == (True, True, True)
    expected = _http_probabilities(compat_server, model, pixels)
    for form in ("contents", "raw"):
        answer = result[form]
        assert answer["model_name"] == model
        assert answer["id"] == f"kserve-grpc-{form == 'raw'}"
        np.testing.assert_array_equal(np.asarray(answer["probabilities"], np.float32), expected)
        assert answer["embedding_shape"] == [3, 16]
    routed = result["routed"]
    assert routed["id"]  # none was sent: the answer carries the request's id
    assert routed["parameters"]["experiment_name"] == experiment
    assert routed["parameters"]["experiment_arm"] in ("a", "b")
    code, details = result["unknown"]
    assert code == "NOT_FOUND"
    assert "unknown model 'tiny-none'" in details
    assert result["server"]["name"] == "headstart"
    assert result["metadata"]["inputs"] == [["image", "UINT8", [-1, 1, 28, 28]]]
    assert result["metadata"]["outputs"] == ["probabilities", "embedding"]
