"""headstart's model service: serves both variants of every model over HTTP.

Importable without torch; the serving install does not have it. ``create_app``
is imported on first use so that the gunicorn master, which reads
``service.settings``, never loads ONNX Runtime before it forks the workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.version import __version__

if TYPE_CHECKING:
    from service.app import create_app

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from service.app import create_app

        return create_app
    raise AttributeError(f"module 'service' has no attribute {name!r}")
