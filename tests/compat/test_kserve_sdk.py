"""KServe's own Python SDK (``InferenceRESTClient``, V2 protocol) against the real server.

The SDK pulls in about 67 packages (fastapi, grpcio, kubernetes, pandas ...), so it runs
from a cached virtualenv of its own (``tests.compat.tools``), not the dev install.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.compat.tools import KSERVE, tool_python

pytestmark = pytest.mark.system

SCRIPT = Path(__file__).with_name("kserve_calls.py")


def _triton_probabilities(url: str, model: str, pixels: np.ndarray) -> np.ndarray:
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        image = httpclient.InferInput("image", list(pixels.shape), "UINT8")
        image.set_data_from_numpy(pixels)
        return client.infer(model, [image]).as_numpy("probabilities")
    finally:
        client.close()


@pytest.mark.parametrize("variant", ["pretrained", "baseline"])
def test_kserve_sdk_checks_health_and_infers(
    compat_server: str, pixels: np.ndarray, tmp_path: Path, variant: str
) -> None:
    python = tool_python(KSERVE)
    model = f"tiny-{variant}"
    np.save(tmp_path / "pixels.npy", pixels)
    out = tmp_path / "out.json"
    run = subprocess.run(
        [str(python), str(SCRIPT), compat_server, model, str(tmp_path / "pixels.npy"), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["live"], result["ready"], result["model_ready"]) == (True, True, True)
    expected = _triton_probabilities(compat_server, model, pixels)
    for form in ("json", "binary"):
        answer = result[form]
        assert answer["model_name"] == model
        assert answer["id"] == f"kserve-{form == 'binary'}"
        np.testing.assert_array_equal(np.asarray(answer["probabilities"], np.float32), expected)
        assert answer["embedding_shape"] == [3, 16]
