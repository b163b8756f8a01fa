from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.postgres import postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (its database is reset per test)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.system)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty experiments database: SQLite in a temp dir, then a real PostgreSQL server.

    SQLite stores what PostgreSQL refuses (NUL characters, strings over a column's length),
    so every case that reaches the database runs on both.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'headstart.db'}"
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url


def reset_postgres(url: str) -> None:
    """Drop every table of the server's database."""
    from sqlalchemy import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
