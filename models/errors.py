"""Errors the offline side raises for problems a user can fix (bad data, bad config)."""

from __future__ import annotations


class ModelsError(Exception):
    """Base of every user-fixable error raised under ``models``; commands print its message."""


class DataError(ModelsError):
    """A data source that cannot be used: unknown, missing, corrupt or too small."""


class ConfigError(ModelsError):
    """A configuration that does not make sense (invalid pairing, impossible budget)."""


class ExportError(ModelsError):
    """An exported graph that fails the checker or disagrees with torch."""


class PlacementError(ModelsError):
    """A variant folder that cannot take a new version as it is."""
