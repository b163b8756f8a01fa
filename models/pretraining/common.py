"""Helpers shared by the pre-training objectives."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TypeVar

import torch
from tqdm import tqdm

from models.distributed import world
from models.nets import Classifier

log = logging.getLogger("models.pretraining")

Net = TypeVar("Net", bound=Classifier)


def as_net(model: Classifier, net: type[Net]) -> Net:
    """``model`` as the network a method trains; ``pretrain`` has checked the pairing."""
    if not isinstance(model, net):
        raise TypeError(f"expected {net.__name__}, got {type(model).__name__}")
    return model


def minibatches(
    n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Yield shuffled index batches covering ``range(n)`` once."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for begin in range(0, stop, batch_size):
        yield order[begin : begin + batch_size]


def epochs(count: int, stage: str) -> Iterator[int]:
    """Epoch numbers with a progress bar (shown on a terminal only)."""
    quiet = None if world().main else True  # one bar, from rank 0
    yield from tqdm(range(1, count + 1), desc=stage, unit="epoch", leave=False, disable=quiet)


def log_epoch(stage: str, epoch: int, total: int, loss: float) -> None:
    log.info("pretrain %s epoch %d/%d loss %.5f", stage, epoch, total, loss)
