from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.experiments.store import ExperimentStore


@pytest.fixture
def store(database_url: str) -> Iterator[ExperimentStore]:
    """A migrated, empty experiment store on SQLite, then on a real PostgreSQL server."""
    store = ExperimentStore(database_url)
    store.migrate()
    yield store
    store.dispose()
