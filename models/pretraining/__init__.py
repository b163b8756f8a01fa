"""Unsupervised pre-training: fill a classifier's encoder from unlabeled images, in place.

``rbm`` and ``dae`` pre-train an MLP greedily, one layer at a time; ``cae`` and
``contrastive`` pre-train a CNN's trunk. ``none`` leaves the random initialisation (the
baseline). The classification head is never pre-trained.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from models.defaults import METHODS, VALID_METHODS, Method
from models.errors import ConfigError
from models.nets import CNN, MLP, Classifier

log = logging.getLogger(__name__)

__all__ = ["METHODS", "VALID_METHODS", "Method", "PretrainConfig", "PretrainReport", "pretrain"]


@dataclass(frozen=True)
class PretrainConfig:
    """Budget and knobs of every method; each method reads the fields it needs."""

    epochs: int = 10
    """Passes over the pool (per layer for the greedy ``rbm`` and ``dae``)."""
    batch_size: int = 64
    lr: float | None = None
    """``None`` picks the method's own default (0.05 for CD-k SGD, 1e-3 for Adam)."""
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
    decoders: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)
    """Per stage, the decoder that maps its code back to logits of its input (``rbm``, ``dae``,
    ``cae``), kept so reconstructions can be shown; empty when the encoder came from a cache."""


def check_pairing(arch: str, method: str) -> Method:
    """Return ``method`` if it fits ``arch``; otherwise a ``ConfigError`` listing valid ones."""
    if arch not in VALID_METHODS:
        raise ConfigError(
            f"unknown architecture {arch!r} (expected one of: {', '.join(VALID_METHODS)})"
        )
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r} (expected one of: {', '.join(METHODS)})")
    if method not in VALID_METHODS[arch]:
        pairs = "; ".join(f"{a}: {', '.join(m)}" for a, m in VALID_METHODS.items())
        raise ConfigError(f"method {method!r} does not apply to arch {arch!r} (valid: {pairs})")
    return method


def pretrain(
    model: Classifier,
    pool: torch.Tensor,
    method: Method,
    config: PretrainConfig,
    generator: torch.Generator,
) -> PretrainReport:
    """Pre-train ``model``'s encoder in place on ``pool`` (``uint8 [N, C, H, W]``, no labels)."""
    start = time.perf_counter()
    report = PretrainReport(method=method)
    if method == "none":
        return report
    if method in ("rbm", "dae"):
        if not isinstance(model, MLP):
            raise ConfigError(f"method {method!r} needs an mlp")
        if method == "rbm":
            from models.pretraining.rbm import pretrain_rbm_stack

            report.losses = pretrain_rbm_stack(model, pool, config, generator, report.decoders)
        else:
            from models.pretraining.autoencoder import pretrain_dae_stack

            report.losses = pretrain_dae_stack(model, pool, config, generator, report.decoders)
    else:
        if not isinstance(model, CNN):
            raise ConfigError(f"method {method!r} needs a cnn")
        if method == "cae":
            from models.pretraining.conv_autoencoder import pretrain_cae

            report.losses = pretrain_cae(model, pool, config, generator, report.decoders)
        else:
            from models.pretraining.contrastive import pretrain_contrastive

            report.losses = pretrain_contrastive(model, pool, config, generator)
    report.seconds = time.perf_counter() - start
    return report
