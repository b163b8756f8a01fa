"""Where the app keeps its per-process state, and typed accessors for it."""

from __future__ import annotations

from flask import Flask, current_app

from service.dataplane import DataPlane
from service.settings import Settings

_PLANE = "headstart.plane"


def attach(app: Flask, plane: DataPlane) -> None:
    app.extensions[_PLANE] = plane


def plane_of(app: Flask) -> DataPlane:
    """``app``'s data plane, outside a request (while the app is being set up)."""
    value: DataPlane = app.extensions[_PLANE]
    return value


def plane() -> DataPlane:
    """The current app's data plane: its models and everything requests can ask of them."""
    value: DataPlane = current_app.extensions[_PLANE]
    return value


def settings() -> Settings:
    """The current app's settings."""
    return plane().settings
