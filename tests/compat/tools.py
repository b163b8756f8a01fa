"""Clients too heavy for the dev install, each in a virtualenv of its own, cached by version.

A tool's virtualenv lives under ``$HEADSTART_COMPAT_CACHE`` (default
``~/.cache/headstart/compat``) in a folder named after its pinned requirement, so it is
built once (from the package registry) and reused by every later run; a new pin builds
a new folder. A build that fails leaves no stamp, so the next run starts it again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.system import in_ci

KSERVE = "kserve==0.21.0"
"""KServe's Python SDK: ``InferenceRESTClient`` speaking the V2 protocol."""

OPENAPI_PYTHON_CLIENT = "openapi-python-client==0.29.1"
"""Generates a typed Python client (httpx + attrs) from an OpenAPI document."""

INSTALL_TIMEOUT_S = 900


def cache_root() -> Path:
    default = Path.home() / ".cache" / "headstart" / "compat"
    return Path(os.environ.get("HEADSTART_COMPAT_CACHE", default))


def tool_python(requirement: str) -> Path:
    """The Python of a virtualenv holding ``requirement``, built on first use.

    Skips (fails under ``CI=true``) with one line when the registry cannot be reached.
    """
    folder = cache_root() / re.sub(r"[^A-Za-z0-9.]+", "-", requirement)
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    if stamp.exists():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                requirement,
            ],
            check=True,
            timeout=INSTALL_TIMEOUT_S,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        message = f"cannot install {requirement} into {folder}: {exc.stderr.strip()[-500:]}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    stamp.write_text(requirement + "\n")
    return python
