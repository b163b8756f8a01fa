"""Fine-tune with any registered mode (:mod:`models.modes`): the one entry point the
experiment core, the build and the report call."""

from __future__ import annotations

import importlib
from typing import Protocol

import torch

from models.batches import Pool
from models.modes import Mode, SemiConfig
from models.nets import Classifier
from models.training import FinetuneConfig, FinetuneResult


class Tuner(Protocol):
    """The one signature of every mode's ``tune`` function."""

    def __call__(
        self,
        model: Classifier,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        config: FinetuneConfig,
        seed: int,
        *,
        semi: SemiConfig,
        unlabeled: Pool | None,
        label: str,
    ) -> FinetuneResult:
        """Train ``model`` in place from its current weights on the labelled ``train``
        (uint8 images, labels), choosing what to keep on ``val``; the modes that use it
        also learn from ``unlabeled``."""
        ...


def tuner(mode: Mode) -> Tuner:
    """The ``tune`` function of ``mode``'s module (imported now, on first use)."""
    found: Tuner = importlib.import_module(mode.module).tune
    return found
