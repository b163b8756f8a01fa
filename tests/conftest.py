from __future__ import annotations

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
