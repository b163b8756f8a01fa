"""Pre-training: fill a classifier's encoder from images before it sees the target's labels.

``rbm`` and ``dae`` pre-train an MLP greedily, one layer at a time; ``cae`` and
``contrastive`` pre-train a CNN's trunk; ``supervised`` trains either on a source task's
labels (a labelled :class:`~models.batches.Pool`), the others use no labels. ``none`` leaves the random initialisation (the
baseline). The classification head is never pre-trained. The methods, the architectures
each fits and their defaults are registered in :mod:`models.methods`; each method's module
here exposes one function with the :class:`Trainer` signature.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from models.batches import Pool
from models.methods import Method, check_pairing
from models.nets import Classifier, arch_kind
from models.pretraining.common import PROBE

log = logging.getLogger(__name__)

__all__ = ["PretrainConfig", "PretrainReport", "Trainer", "pretrain"]


@dataclass(frozen=True)
class PretrainConfig:
    """Budget and knobs of every method; each method reads the fields it needs."""

    epochs: int = 10
    """Passes over the pool (per layer for the greedy ``rbm`` and ``dae``)."""
    batch_size: int = 64
    lr: float | None = None
    """``None`` picks the method's default, registered with it in :mod:`models.methods`."""
    cd_k: int = 1
    """Gibbs steps of contrastive divergence (``rbm``)."""
    corruption: float = 0.25
    """Fraction of inputs zeroed for the denoising objectives (``dae``, ``cae``)."""
    temperature: float = 0.5
    """NT-Xent temperature (``contrastive``)."""
    projection_dim: int = 64
    """Width of the projection head the contrastive loss sees (discarded afterwards)."""


@dataclass
class PretrainReport:
    """What pre-training did: loss per epoch for each stage (a layer, or the whole trunk)."""

    method: Method
    losses: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    dataset: str = ""
    """The data set pre-training saw (the target's, for its own pool); "" when unknown."""
    num_images: int = 0
    """How many images it saw."""
    probe: list[float] = field(default_factory=list)
    """The encoder's k-NN accuracy after each epoch (:mod:`models.probe`), when probed."""
    decoders: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)
    """Per stage, the decoder that maps its code back to logits of its input (``rbm``, ``dae``,
    ``cae``), kept so reconstructions can be shown; empty when the encoder came from a cache."""


class Trainer(Protocol):
    """The one signature of every method's ``pretrain`` function."""

    def __call__(
        self,
        model: Classifier,
        pool: Pool,
        config: PretrainConfig,
        generator: torch.Generator,
        *,
        lr: float,
        decoders: dict[str, torch.nn.Module],
    ) -> dict[str, list[float]]:
        """Pre-train ``model``'s encoder in place; return the losses per epoch by stage and
        put each stage's decoder (if the method has one) into ``decoders``."""
        ...


def trainer(method: Method) -> Trainer:
    """The ``pretrain`` function of ``method``'s module (imported now, on first use)."""
    if method.module is None:
        raise ValueError(f"method {method.value!r} trains nothing")
    found: Trainer = importlib.import_module(method.module).pretrain
    return found


def pretrain(
    model: Classifier,
    pool: torch.Tensor | Pool,
    method: Method,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    probe: Callable[[], float] | None = None,
) -> PretrainReport:
    """Pre-train ``model``'s encoder in place on ``pool`` (``uint8 [N, C, H, W]``, no labels).

    ``probe`` is measured after every epoch and logged beside the loss (a
    :class:`models.probe.KnnProbe` keeps its measurements for the report).

    ``pool`` is a tensor or a :class:`~models.batches.Pool` (which may stream from disk). Under
    ``torchrun`` each rank trains on its slice of every global batch and the ranks' gradients
    (or, for the RBM, its CD updates) are summed, so every rank ends with the same encoder.
    """
    start = time.perf_counter()
    method = check_pairing(arch_kind(model.config), method)
    report = PretrainReport(method=method)
    if method is Method.none:
        return report
    if isinstance(pool, torch.Tensor):
        pool = Pool(pool, pool.device)
    lr = method.lr if config.lr is None else config.lr
    token = PROBE.set(probe)
    try:
        report.losses = trainer(method)(
            model, pool, config, generator, lr=lr, decoders=report.decoders
        )
    finally:
        PROBE.reset(token)
    report.seconds = time.perf_counter() - start
    return report
