"""headstart's model service: serves both variants of every model over HTTP.

Importable without torch; the serving install does not have it.
"""

from __future__ import annotations

from service.app import create_app
from service.version import __version__

__all__ = ["__version__", "create_app"]
