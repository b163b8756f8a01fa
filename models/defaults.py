"""Defaults and vocabularies the command line needs without importing torch."""

from __future__ import annotations

from typing import Literal

Method = Literal["rbm", "dae", "cae", "contrastive", "none"]
METHODS: tuple[Method, ...] = ("rbm", "dae", "cae", "contrastive", "none")
ARCHS: tuple[str, ...] = ("mlp", "cnn")
VALID_METHODS: dict[str, tuple[Method, ...]] = {
    "mlp": ("rbm", "dae", "none"),
    "cnn": ("cae", "contrastive", "none"),
}

DATASET = "mnist-5k"
NAME = "mnist"
ARCH = "mlp"
DEFAULT_METHOD: dict[str, Method] = {"mlp": "rbm", "cnn": "cae"}
"""The pre-training each architecture gets when ``--method`` is not given."""
LABELS_PER_CLASS = 10
SEED = 0
SPLIT_SEED = 0
