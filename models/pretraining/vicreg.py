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

from models import distributed
from models.batches import Pool
from models.nets import CNN, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch
from models.pretraining.contrastive import TwoViews, augment_view

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
    encoder = [*model.convs.parameters(), *model.dense.parameters()]
    optimiser = torch.optim.Adam([*encoder, *projector.parameters()], lr=lr)
    net = distributed.data_parallel(TwoViews(model, projector))
    losses: list[float] = []
    for epoch in epochs(config.epochs, "vicreg"):
        total, steps = 0.0, 0
        for batch in pool.batches(config.batch_size, generator, drop_last=True):
            x = to_unit(batch.images)
            first = augment_view(x, generator, global_rows=batch.rows)
            second = augment_view(x, generator, global_rows=batch.rows)
            z1, z2 = net(first, second)
            loss = vicreg_loss(distributed.gather_rows(z1), distributed.gather_rows(z2))
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(steps, 1))
        log_epoch("vicreg", epoch, config.epochs, losses[-1])
    return {"vicreg": losses}
