"""SimCLR-style contrastive pre-training with the NT-Xent loss (Chen et al., 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.augment import random_affine, random_erase
from models.nets import CNN, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch, minibatches


def augment_view(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random view: shift, rotation, scale and a blanked patch, plus pixel noise."""
    h = x.shape[-1]
    view = random_affine(x, generator, max_shift=h / 8, max_degrees=15.0, scale=(0.85, 1.15))
    view = random_erase(view, generator, size=0.3, p=0.5)
    noise = torch.randn(view.shape, generator=generator, device=generator.device)
    return (view + 0.05 * noise.to(view.device)).clamp(0.0, 1.0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy: each view must pick its twin among 2N-1 others."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # [2N, P]
    sim = z @ z.T / temperature  # [2N, 2N]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def pretrain(
    model: Classifier,
    pool: torch.Tensor,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train trunk + dense layer so two views of one image embed close, others far.

    It has no decoder: the projection head the loss sees is discarded, ``decoders`` untouched.
    """
    model = as_net(model, CNN)
    projector = nn.Sequential(
        nn.Linear(model.embedding_dim, model.embedding_dim),
        nn.ReLU(),
        nn.Linear(model.embedding_dim, config.projection_dim),
    ).to(pool.device)
    encoder = [*model.convs.parameters(), *model.dense.parameters()]
    optimiser = torch.optim.Adam([*encoder, *projector.parameters()], lr=lr)
    losses: list[float] = []
    for epoch in epochs(config.epochs, "contrastive"):
        total, steps = 0.0, 0
        for idx in minibatches(len(pool), config.batch_size, generator, drop_last=True):
            x = to_unit(pool[idx])
            z1 = projector(model.embed(augment_view(x, generator)))
            z2 = projector(model.embed(augment_view(x, generator)))
            loss = nt_xent(z1, z2, config.temperature)
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(steps, 1))
        log_epoch("contrastive", epoch, config.epochs, losses[-1])
    return {"contrastive": losses}
