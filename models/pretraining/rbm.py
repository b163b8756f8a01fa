"""Greedy layer-wise RBM stack trained with CD-k, unrolled into an MLP (a deep belief net)."""

from __future__ import annotations

import torch
from torch import nn

from models.errors import ConfigError
from models.nets import MLP, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch, minibatches


def train_rbm(
    data: torch.Tensor,
    hidden: int,
    config: PretrainConfig,
    generator: torch.Generator,
    stage: str,
    *,
    lr: float,
    decoders: dict[str, nn.Module] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Train a Bernoulli RBM on ``data`` in ``[0, 1]``; return ``(W [H, V], hidden bias, losses)``.

    Follows Hinton's practical guide: probabilities rather than samples for the visible
    units and the statistics, sampled hidden states driving the chain, momentum rising
    from 0.5 to 0.9, and a small L2 weight cost.
    """
    n, visible = data.shape
    dev = data.device
    weight = 0.01 * torch.randn(hidden, visible, generator=generator, device=dev)
    mean = data.mean(0).clamp(1e-3, 1 - 1e-3)
    b_vis = torch.log(mean / (1 - mean))
    b_hid = torch.zeros(hidden, device=dev)
    v_w, v_bv, v_bh = torch.zeros_like(weight), torch.zeros_like(b_vis), torch.zeros_like(b_hid)
    losses: list[float] = []
    for epoch in epochs(config.epochs, stage):
        momentum = 0.5 if epoch <= 5 else 0.9
        total = 0.0
        for idx in minibatches(n, config.batch_size, generator):
            v0 = data[idx]
            h0 = torch.sigmoid(v0 @ weight.T + b_hid)
            h = torch.bernoulli(h0, generator=generator)
            vk, hk = v0, h0
            for _ in range(config.cd_k):
                vk = torch.sigmoid(h @ weight + b_vis)
                hk = torch.sigmoid(vk @ weight.T + b_hid)
                h = torch.bernoulli(hk, generator=generator)
            size = v0.shape[0]
            grad_w = (h0.T @ v0 - hk.T @ vk) / size - 2e-4 * weight
            v_w.mul_(momentum).add_(grad_w, alpha=lr)
            v_bv.mul_(momentum).add_((v0 - vk).mean(0), alpha=lr)
            v_bh.mul_(momentum).add_((h0 - hk).mean(0), alpha=lr)
            weight += v_w
            b_vis += v_bv
            b_hid += v_bh
            total += float(((v0 - vk) ** 2).sum())
        losses.append(total / n)
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
    pool: torch.Tensor,
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
    data = to_unit(pool).flatten(1)
    losses: dict[str, list[float]] = {}
    for index, layer in enumerate(mlp.linear_layers()):
        stage = f"rbm{index}"
        weight, b_hid, losses[stage] = train_rbm(
            data, layer.out_features, config, generator, stage, lr=lr, decoders=decoders
        )
        layer.weight.copy_(weight)
        layer.bias.copy_(b_hid)
        data = torch.sigmoid(data @ weight.T + b_hid)
    return losses
