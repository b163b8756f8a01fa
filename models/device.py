"""Pick the torch device from ``auto|cpu|cuda``."""

from __future__ import annotations

import torch

from models.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` takes a GPU when there is one; ``cuda`` without one is a clear error."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r} (expected one of: {', '.join(DEVICES)})")
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA GPU")
    return torch.device("cpu")
