from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.experiments.store import ExperimentStore
from tests.system.postgres import postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (its database is reset per test)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.system)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExperimentStore]:
    """A migrated, empty experiment store on SQLite, then on a real PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state' / 'headstart.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _reset(url)
    store = ExperimentStore(url)
    store.migrate()
    yield store
    store.dispose()


def _reset(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
