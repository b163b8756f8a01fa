"""Greedy layer-wise RBM stack trained with CD-k, unrolled into an MLP (a deep belief net).

CD-k has no autograd loss, so data-parallel training sums its statistics explicitly: each
rank computes the positive and negative phase sums over its slice of the global batch, one
all-reduce adds them up, and every rank applies the same update.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from models import distributed
from models.batches import Pool
from models.errors import ConfigError
from models.nets import MLP, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch

Encode = Callable[[torch.Tensor], torch.Tensor]
"""uint8 images ``[B, C, H, W]`` -> the input of the layer being trained, ``[B, V]``."""


def _bernoulli(probs: torch.Tensor, generator: torch.Generator, rows: int) -> torch.Tensor:
    """Sample ``probs`` (this rank's rows of a global batch of ``rows``) as one process would."""
    start, stop = distributed.world().part(rows)
    draw = torch.rand((rows, *probs.shape[1:]), generator=generator, device=generator.device)
    return (draw[start:stop].to(probs.device) < probs).to(probs.dtype)


def train_rbm(
    pool: Pool,
    encode: Encode,
    hidden: int,
    config: PretrainConfig,
    generator: torch.Generator,
    stage: str,
    *,
    lr: float,
    decoders: dict[str, nn.Module] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Train a Bernoulli RBM on ``encode(images)`` in ``[0, 1]``; return ``(W [H, V], hidden
    bias, losses)``.

    Follows Hinton's practical guide: probabilities rather than samples for the visible
    units and the statistics, sampled hidden states driving the chain, momentum rising
    from 0.5 to 0.9, and a small L2 weight cost.
    """
    dev = pool.device
    n = len(pool)
    # The visible biases start at the log-odds of the mean input, summed over every rank.
    totals: torch.Tensor | None = None
    for batch in pool.in_order():
        part = encode(batch.images).sum(0)
        totals = part if totals is None else totals + part
    assert totals is not None
    distributed.all_sum_([totals])
    visible = totals.shape[0]
    weight = 0.01 * torch.randn(hidden, visible, generator=generator, device=dev)
    mean = (totals / n).clamp(1e-3, 1 - 1e-3)
    b_vis = torch.log(mean / (1 - mean))
    b_hid = torch.zeros(hidden, device=dev)
    v_w, v_bv, v_bh = torch.zeros_like(weight), torch.zeros_like(b_vis), torch.zeros_like(b_hid)
    losses: list[float] = []
    for epoch in epochs(config.epochs, stage):
        momentum = 0.5 if epoch <= 5 else 0.9
        total = 0.0
        for batch in pool.batches(config.batch_size, generator):
            v0 = encode(batch.images)
            h0 = torch.sigmoid(v0 @ weight.T + b_hid)
            h = _bernoulli(h0, generator, batch.rows)
            vk, hk = v0, h0
            for _ in range(config.cd_k):
                vk = torch.sigmoid(h @ weight + b_vis)
                hk = torch.sigmoid(vk @ weight.T + b_hid)
                h = _bernoulli(hk, generator, batch.rows)
            # Sums over this rank's rows; one all-reduce makes them the global batch's.
            stats = [h0.T @ v0 - hk.T @ vk, (v0 - vk).sum(0), (h0 - hk).sum(0)]
            distributed.all_sum_(stats)
            size = batch.rows
            v_w.mul_(momentum).add_(stats[0] / size - 2e-4 * weight, alpha=lr)
            v_bv.mul_(momentum).add_(stats[1] / size, alpha=lr)
            v_bh.mul_(momentum).add_(stats[2] / size, alpha=lr)
            weight += v_w
            b_vis += v_bv
            b_hid += v_bh
            total += float(((v0 - vk) ** 2).sum())
        losses.append(distributed.total(total, dev) / n)
        log_epoch(stage, epoch, config.epochs, losses[-1])
    if decoders is not None:
        decoder = nn.Linear(hidden, visible).to(dev)
        decoder.weight.copy_(weight.T)
        decoder.bias.copy_(b_vis)
        decoders[stage] = decoder
    return weight, b_hid, losses


@torch.no_grad()
def pretrain(
    model: Classifier,
    pool: Pool,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train one RBM per hidden layer on the previous one's activations; copy into ``model``."""
    mlp = as_net(model, MLP)
    if mlp.config.activation != "sigmoid":
        raise ConfigError("rbm pre-training unrolls into sigmoid units: use mlp activation sigmoid")
    losses: dict[str, list[float]] = {}
    below: list[nn.Linear] = []

    def encode(images: torch.Tensor) -> torch.Tensor:
        x = to_unit(images).flatten(1)
        for trained in below:
            x = torch.sigmoid(trained(x))
        return x

    for index, layer in enumerate(mlp.linear_layers()):
        stage = f"rbm{index}"
        weight, b_hid, losses[stage] = train_rbm(
            pool, encode, layer.out_features, config, generator, stage, lr=lr, decoders=decoders
        )
        layer.weight.copy_(weight)
        layer.bias.copy_(b_hid)
        below.append(layer)
    return losses
