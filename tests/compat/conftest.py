from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.builders import write_repository
from tests.server import grpc_address, running_server


@pytest.fixture(scope="package")
def compat_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compat-server") / "gunicorn.log"


@pytest.fixture(scope="package")
def compat_server(tmp_path_factory: pytest.TempPathFactory, compat_log: Path) -> Iterator[str]:
    """The real gunicorn command on loopback, 2 workers, serving ``tiny``'s two variants."""
    repo = write_repository(tmp_path_factory.mktemp("compat-repo"))
    # An entry that fails to load, so the repository index has one to report.
    broken = repo / "broken" / "baseline"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text("{}")
    (broken / "model.onnx").write_bytes(b"not a model")
    env = {"HEADSTART_WORKERS": "2", "HEADSTART_MAX_BATCH": "64", "HEADSTART_ADMIN_TOKEN": ADMIN}
    with running_server(repo, env, log_path=compat_log) as url:
        yield url


ADMIN = "t-compat-admin"
"""The admin token of ``compat_server``, for creating experiments."""


@pytest.fixture(scope="package")
def compat_grpc(compat_server: str, compat_log: Path) -> str:
    """``host:port`` of ``compat_server``'s gRPC service, once it answers health checks."""
    return grpc_address(compat_log)


@pytest.fixture(scope="package")
def pixels() -> np.ndarray:
    """Three images, ``uint8 [3, 1, 28, 28]``."""
    return np.random.default_rng(11).integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)
