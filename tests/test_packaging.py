"""The serving side must install and import without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Make torch unimportable, then import every module of the service package.
_IMPORT_WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    sys.modules["torch"] = None  # any "import torch" now raises ImportError
    import service
    for info in pkgutil.walk_packages(service.__path__, "service."):
        if info.name == "service.gunicorn_conf":
            continue  # a gunicorn config file, executed by gunicorn, not imported
        importlib.import_module(info.name)
    assert "torch" not in sys.modules or sys.modules["torch"] is None
    print("ok", len([m for m in sys.modules if m.startswith("service")]))
    """
)


def test_service_imports_without_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITHOUT_TORCH],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_torch_blocker_really_blocks() -> None:
    # Guard for the test above: the same trick must make "import torch" fail.
    code = 'import sys; sys.modules["torch"] = None\ntry:\n import torch\nexcept ImportError:\n print("blocked")'
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "blocked"


def test_base_dependencies_exclude_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = [d.split(">")[0].split("=")[0].strip().lower() for d in project["dependencies"]]
    assert "torch" not in base
    assert "onnx" not in base  # the runtime needs onnxruntime only
    assert any(d.startswith("torch==") for d in project["optional-dependencies"]["train"])
