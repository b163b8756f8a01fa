"""The installed headstart version, written into every manifest and shown by the service."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("headstart")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"
