"""The app's experiment store: opened and migrated when the app is created, one per process.

A database that cannot be opened (a read-only state directory, PostgreSQL unreachable)
does not stop the service: classify and the rest keep serving, and the experiment routes
answer 503 saying why.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from service.errors import NotReady
from service.experiments.store import ExperimentStore, default_url
from service.settings import Settings

log = logging.getLogger(__name__)

_KEY = "headstart.experiments"
_FAILURE = "headstart.experiments.failure"


def attach(app: Flask, settings: Settings) -> ExperimentStore | None:
    url = settings.database_url or default_url(settings.state_directory)
    try:
        store = ExperimentStore(url)
        store.migrate()
    except (SQLAlchemyError, OSError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        log.error("experiments are off: cannot open the experiments database: %s", reason)
        app.extensions[_FAILURE] = reason
        return None
    app.extensions[_KEY] = store
    return store


def store_of(app: Flask) -> ExperimentStore | None:
    """``app``'s experiment store, outside a request; None when it could not be opened."""
    value: ExperimentStore | None = app.extensions.get(_KEY)
    return value


def experiment_store() -> ExperimentStore:
    """The current app's experiment store; 503 saying why if it could not be opened."""
    value: ExperimentStore | None = current_app.extensions.get(_KEY)
    if value is None:
        reason = current_app.extensions.get(_FAILURE, "not opened")
        raise NotReady(
            f"experiments are unavailable: the database could not be opened ({reason}); set "
            "HEADSTART_DATABASE_URL, or HEADSTART_STATE_DIRECTORY to a writable directory"
        )
    return value
