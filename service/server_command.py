"""The one gunicorn command line that serves headstart: the CLI, the container, the
benchmark and the tests all start the service with it."""

from __future__ import annotations

import sys
from pathlib import Path

GUNICORN_ARGS: tuple[str, ...] = (
    "--config",
    "python:service.gunicorn_conf",
    "service:create_app()",
)
"""Everything else comes from ``HEADSTART_*`` variables (see :mod:`service.gunicorn_conf`)."""


def gunicorn() -> list[str]:
    """The gunicorn of the Python environment this runs in."""
    script = Path(sys.executable).with_name("gunicorn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gunicorn"]


def serve_command() -> list[str]:
    """The whole command that serves the model repository named by the environment."""
    return [*gunicorn(), *GUNICORN_ARGS]
