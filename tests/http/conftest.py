from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from service.runtime import ModelStore
from tests.builders import write_repository


@pytest.fixture(scope="session")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """The same tiny models ``live_server`` serves (the builders are seeded), loaded here."""
    return ModelStore.load(write_repository(tmp_path_factory.mktemp("local-repo")))


@pytest.fixture(scope="session")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def tmp_repo(tmp_path: Path) -> Path:
    return write_repository(tmp_path / "repo")
