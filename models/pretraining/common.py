"""Helpers shared by the pre-training objectives."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

from tqdm import tqdm

from models.batches import minibatches
from models.distributed import world
from models.nets import Classifier

log = logging.getLogger("models.pretraining")

__all__ = ["as_net", "epochs", "log_epoch", "minibatches"]

Net = TypeVar("Net", bound=Classifier)

PROBE: ContextVar[Callable[[], float] | None] = ContextVar("pretraining_probe", default=None)
"""Measured after every epoch of every method while set (:func:`models.pretraining.pretrain`
sets it to a :class:`models.probe.KnnProbe` when it is given one)."""


def as_net(model: Classifier, net: type[Net]) -> Net:
    """``model`` as the network a method trains; ``pretrain`` has checked the pairing."""
    if not isinstance(model, net):
        raise TypeError(f"expected {net.__name__}, got {type(model).__name__}")
    return model


def epochs(count: int, stage: str) -> Iterator[int]:
    """Epoch numbers with a progress bar (shown on a terminal only)."""
    quiet = None if world().main else True  # one bar, from rank 0
    yield from tqdm(range(1, count + 1), desc=stage, unit="epoch", leave=False, disable=quiet)


def log_epoch(stage: str, epoch: int, total: int, loss: float) -> None:
    """Log an epoch's loss, and the probe's measurement of the encoder when there is one."""
    probe = PROBE.get()
    if probe is None:
        log.info("pretrain %s epoch %d/%d loss %.5f", stage, epoch, total, loss)
        return
    log.info(
        "pretrain %s epoch %d/%d loss %.5f k-NN accuracy %.4f", stage, epoch, total, loss, probe()
    )
