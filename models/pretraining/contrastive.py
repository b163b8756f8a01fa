"""SimCLR-style contrastive pre-training with the NT-Xent loss (Chen et al., 2020).

Data-parallel: each rank embeds its slice of the global batch, the projections are gathered
(with their gradients) so that every rank computes NT-Xent over the whole global batch, as
one process does, and ``DistributedDataParallel`` averages the encoder's gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models import distributed
from models.augment import random_affine, random_erase
from models.batches import Pool
from models.nets import CNN, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch


def augment_view(
    x: torch.Tensor, generator: torch.Generator, *, global_rows: int | None = None
) -> torch.Tensor:
    """One random view: shift, rotation, scale and a blanked patch, plus pixel noise.

    ``global_rows``: ``x`` is this rank's slice of a global batch of that many images.
    """
    h = x.shape[-1]
    rows = x.shape[0] if global_rows is None else global_rows
    start, stop = (0, rows) if global_rows is None else distributed.world().part(rows)
    view = random_affine(
        x,
        generator,
        max_shift=h / 8,
        max_degrees=15.0,
        scale=(0.85, 1.15),
        global_rows=global_rows,
    )
    view = random_erase(view, generator, size=0.3, p=0.5, global_rows=global_rows)
    noise = torch.randn((rows, *view.shape[1:]), generator=generator, device=generator.device)
    return (view + 0.05 * noise[start:stop].to(view.device)).clamp(0.0, 1.0)


class TwoViews(nn.Module):
    """Encoder and projection head applied to both views (one DDP forward per step)."""

    def __init__(self, model: CNN, projector: nn.Module) -> None:
        super().__init__()
        self.convs, self.dense, self.projector = model.convs, model.dense, projector
        self.embed = model.embed

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.projector(self.embed(a)), self.projector(self.embed(b))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross entropy: each view must pick its twin among 2N-1 others."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # [2N, P]
    sim = z @ z.T / temperature  # [2N, 2N]
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def train_views(
    model: CNN,
    projector: nn.Module,
    pool: Pool,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    stage: str,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> dict[str, list[float]]:
    """The two-view loop every joint-embedding method shares: two random views of each image
    of a batch, through encoder and projector, scored by ``loss_of`` on the global batch."""
    encoder = [*model.convs.parameters(), *model.dense.parameters()]
    optimiser = torch.optim.Adam([*encoder, *projector.parameters()], lr=lr)
    net = distributed.data_parallel(TwoViews(model, projector))
    losses: list[float] = []
    for epoch in epochs(config.epochs, stage):
        total, steps = 0.0, 0
        for batch in pool.batches(config.batch_size, generator, drop_last=True):
            x = to_unit(batch.images)
            first = augment_view(x, generator, global_rows=batch.rows)
            second = augment_view(x, generator, global_rows=batch.rows)
            z1, z2 = net(first, second)
            # Every rank computes the global batch's loss; the gather's backward sums the
            # ranks' gradients into each rank's rows and DDP's average undoes that sum.
            loss = loss_of(distributed.gather_rows(z1), distributed.gather_rows(z2))
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(steps, 1))
        log_epoch(stage, epoch, config.epochs, losses[-1])
    return {stage: losses}


def pretrain(
    model: Classifier,
    pool: Pool,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train trunk + dense layer so two views of one image embed close, others far."""
    model = as_net(model, CNN)
    projector = nn.Sequential(
        nn.Linear(model.embedding_dim, model.embedding_dim),
        nn.ReLU(),
        nn.Linear(model.embedding_dim, config.projection_dim),
    ).to(pool.device)
    return train_views(
        model,
        projector,
        pool,
        config,
        generator,
        lr=lr,
        stage="contrastive",
        loss_of=lambda z1, z2: nt_xent(z1, z2, config.temperature),
    )
