"""Defaults and vocabularies the command line needs without importing torch."""

from __future__ import annotations

from typing import Literal

Arch = Literal["mlp", "cnn"]
ARCHS: tuple[Arch, ...] = ("mlp", "cnn")
"""The classifier architectures (built in :mod:`models.nets`)."""

DATASET = "mnist-5k"
NAME = "mnist"
ARCH: Arch = "cnn"
LABELS_PER_CLASS = 10
SEED = 0
SPLIT_SEED = 0
