"""/openapi.json from the real server: valid OpenAPI 3.1, and a client generated from it works."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from openapi_spec_validator import validate

from tests.compat.tools import OPENAPI_PYTHON_CLIENT, tool_python
from tests.images import png

SCRIPT = Path(__file__).with_name("generated_calls.py")


def _document(url: str) -> dict[str, object]:
    response = requests.get(f"{url}/openapi.json", timeout=5)
    assert response.status_code == 200
    document: dict[str, object] = response.json()
    return document


def _import_unset(package: Path) -> None:
    """Add the one import openapi-python-client 0.29.1 leaves out.

    For a required request body with several media types (V2 infer: JSON, or JSON and
    binary tensors) it annotates ``body`` with ``Unset`` without importing it.
    """
    for module in (package / "api").rglob("*.py"):
        text = module.read_text()
        if "| Unset" in text and not re.search(
            r"^from \.\.\.types import .*\bUnset\b", text, re.MULTILINE
        ):
            module.write_text("from ...types import Unset\n" + text)


def test_the_served_document_is_valid_openapi(compat_server: str) -> None:
    validate(_document(compat_server))  # raises, naming the fault, if it is not


@pytest.mark.system
def test_a_generated_client_makes_real_calls(
    compat_server: str, pixels: np.ndarray, tmp_path: Path
) -> None:
    python = tool_python(OPENAPI_PYTHON_CLIENT)
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(_document(compat_server)))
    package = tmp_path / "generated" / "headstart_client"
    generate = subprocess.run(
        [
            str(python),
            *("-m", "openapi_python_client", "generate"),
            *(f"--path={spec}", f"--output-path={package}", "--meta=none"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        # The generator tidies its imports with the ruff installed beside it.
        env={**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert generate.returncode == 0, generate.stdout[-3000:] + generate.stderr[-3000:]
    _import_unset(package)
    digit = pixels[0, 0]
    (tmp_path / "digit.png").write_bytes(png(digit))
    (tmp_path / "digit.raw").write_bytes(digit.tobytes())
    out = tmp_path / "out.json"
    run = subprocess.run(
        [
            *(str(python), str(SCRIPT), compat_server),
            *(str(tmp_path / "digit.png"), str(tmp_path / "digit.raw"), str(out)),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(package.parent), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["server"]["name"] == "headstart"
    assert result["ready"]["status"] == "degraded"  # the compat repository has a broken entry
    assert result["models"] == ["tiny"]
    (prediction,) = result["classify"]["predictions"]
    assert len(prediction["top_k"]) == 3
    infer = result["infer"]
    assert (infer["model_name"], infer["id"]) == ("tiny-baseline", "generated")
    (probabilities,) = infer["outputs"]
    assert probabilities["shape"] == [1, 10]
    # The same image by v1 (PNG, no inversion) and V2 (raw pixels): the same top class.
    best = int(np.argmax(probabilities["data"]))
    assert prediction["class_index"] == best
    assert result["config"]["max_batch_size"] == 64
    assert {s["name"] for s in result["stats"]["model_stats"]} == {
        "tiny-baseline",
        "tiny-pretrained",
    }
    assert [e["name"] for e in result["index"]] == ["tiny-baseline", "tiny-pretrained"]
    assert result["unknown"]["error"].startswith("unknown model 'tiny-distilled'")
