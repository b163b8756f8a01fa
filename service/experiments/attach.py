"""The app's experiment store: opened and migrated when the app is created, one per process."""

from __future__ import annotations

from flask import Flask, current_app

from service.experiments.store import ExperimentStore, default_url
from service.settings import Settings

_KEY = "headstart.experiments"


def attach(app: Flask, settings: Settings) -> ExperimentStore:
    store = ExperimentStore(settings.database_url or default_url(settings.state_directory))
    store.migrate()
    app.extensions[_KEY] = store
    return store


def experiment_store() -> ExperimentStore:
    """The current app's experiment store."""
    value: ExperimentStore = current_app.extensions[_KEY]
    return value
