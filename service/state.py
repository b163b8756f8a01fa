"""Where the app keeps its per-process state, and typed accessors for it."""

from __future__ import annotations

from flask import Flask, current_app

from service.runtime import ModelStore
from service.settings import Settings

_STORE = "headstart.store"
_SETTINGS = "headstart.settings"


def attach(app: Flask, settings: Settings, model_store: ModelStore) -> None:
    app.extensions[_SETTINGS] = settings
    app.extensions[_STORE] = model_store


def store() -> ModelStore:
    """The current app's loaded models."""
    value: ModelStore = current_app.extensions[_STORE]
    return value


def settings() -> Settings:
    """The current app's settings."""
    value: Settings = current_app.extensions[_SETTINGS]
    return value
