"""How variants are named on the wire: v1 takes model and variant apart, V2 one joined name."""

from __future__ import annotations

from service.manifest import Manifest

DEFAULT_VARIANT = "pretrained"
"""The variant v1 serves when a request names none."""


def v2_name(manifest: Manifest) -> str:
    """A variant's V2 model name, ``<model>-<variant>``."""
    return f"{manifest.name}-{manifest.variant}"


def split_v2_name(name: str) -> tuple[str, str]:
    """``(model, variant)`` from a V2 name; both empty when it has no hyphen."""
    # Model names hold no hyphen (see service.manifest), so the last one separates them.
    model, _, variant = name.rpartition("-")
    return (model, variant) if model else ("", "")
