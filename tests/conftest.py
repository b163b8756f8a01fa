from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import write_repository
from tests.server import running_server


@pytest.fixture(autouse=True)
def _state_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apps a test creates keep their experiments database in a temp dir, not the checkout."""
    monkeypatch.setenv("HEADSTART_STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A valid model repository with both variants of one tiny model, ``tiny``."""
    return write_repository(tmp_path / "repo")


@pytest.fixture(scope="session")
def live_server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's gunicorn (``live_server``) writes its error and access log."""
    return tmp_path_factory.mktemp("live-server") / "gunicorn.log"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, live_server_log: Path) -> Iterator[str]:
    """Base URL of the real gunicorn command, 2 workers, serving a repository with ``tiny``."""
    repo = write_repository(tmp_path_factory.mktemp("live-repo"))
    with running_server(repo, {"HEADSTART_WORKERS": "2"}, log_path=live_server_log) as url:
        yield url


@pytest.fixture(scope="session")
def quick_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository ``headstart build --quick`` trains once per session: the default model's
    architecture, method and data through the real training and export code, on the shrunk
    budget (its predictions stay near chance; its shapes, names and sizes are the default's)."""
    root = tmp_path_factory.mktemp("quick-build") / "model_repository"
    command = [sys.executable, "-m", "scripts.cli", "build", "--quick", "--device", "cpu"]
    result = subprocess.run(
        [*command, "--model-repository", str(root)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"headstart build --quick exited {result.returncode}:\n{result.stderr}")
    return root


@pytest.fixture(scope="session")
def quick_server(quick_repository: Path) -> Iterator[str]:
    """Base URL of the real gunicorn command serving ``quick_repository`` (model ``mnist``)."""
    with running_server(quick_repository) as url:
        yield url
