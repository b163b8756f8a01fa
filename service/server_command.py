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

_HINT = (
    "build the default models with `headstart build`, or name another repository with "
    "--model-repository or HEADSTART_MODEL_REPOSITORY"
)


def gunicorn() -> list[str]:
    """The gunicorn of the Python environment this runs in."""
    script = Path(sys.executable).with_name("gunicorn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gunicorn"]


def serve_command() -> list[str]:
    """The whole command that serves the model repository named by the environment."""
    return [*gunicorn(), *GUNICORN_ARGS]


def repository_problem(root: Path) -> str | None:
    """Why the service must not start on ``root`` (missing, not a directory, or holding no
    model directory), as one line; ``None`` when it may. Every launch path asks this."""
    shown = root.absolute()
    try:
        if not root.exists():
            return f"model repository {shown} does not exist ({_HINT})"
        if not root.is_dir():
            return f"model repository {shown} is not a directory ({_HINT})"
        if not any(p.is_dir() and not p.name.startswith(".") for p in root.iterdir()):
            return f"model repository {shown} holds no models ({_HINT})"
    except OSError as exc:
        return f"model repository {shown} cannot be read ({exc.strerror})"
    return None
