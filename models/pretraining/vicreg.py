"""VICReg: variance-invariance-covariance regularised views (Bardes, Ponce & LeCun, 2022).

Like ``contrastive`` it pulls two views of an image together, but it needs no negatives:
collapse is prevented by keeping each projected feature's spread above one and the features
decorrelated, which suits the small batches and pools this project trains on.
Data-parallel as ``contrastive``: projections are gathered so every rank computes the
global batch's loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.batches import Pool
from models.nets import CNN, Classifier
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net
from models.pretraining.contrastive import train_views

INVARIANCE, VARIANCE, COVARIANCE = 25.0, 25.0, 1.0
"""The paper's weights of the three terms."""


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of twins, plus hinges on each feature's standard deviation and
    the squared off-diagonal covariances (per feature)."""
    n, d = z1.shape
    invariance = F.mse_loss(z1, z2)
    variance = z1.new_zeros(())
    covariance = z1.new_zeros(())
    for z in (z1, z2):
        z = z - z.mean(dim=0)
        std = torch.sqrt(z.var(dim=0) + 1e-4)
        variance = variance + torch.relu(1 - std).mean() / 2
        cov = (z.T @ z) / (n - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        covariance = covariance + off.pow(2).sum() / d
    return INVARIANCE * invariance + VARIANCE * variance + COVARIANCE * covariance


def pretrain(
    model: Classifier,
    pool: Pool,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train trunk + dense layer so two views of one image project alike, without collapse."""
    model = as_net(model, CNN)
    width = 4 * model.embedding_dim  # the expander is wider than the embedding, as published
    projector = nn.Sequential(
        # No batch norm: its statistics would differ per rank, and data-parallel training
        # must give the encoder one process gives.
        nn.Linear(model.embedding_dim, width),
        nn.ReLU(),
        nn.Linear(width, width),
    ).to(pool.device)
    return train_views(
        model, projector, pool, config, generator, lr=lr, stage="vicreg", loss_of=vicreg_loss
    )
