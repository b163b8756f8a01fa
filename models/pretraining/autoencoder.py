"""Greedy layer-wise stacked denoising autoencoders for an MLP (Vincent et al., 2008/2010).

Data-parallel: each layer and its decoder are wrapped in ``DistributedDataParallel`` while
that layer trains; the layers below are frozen and applied to each batch on the fly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import distributed
from models.augment import mask_noise
from models.batches import Pool
from models.nets import MLP, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch


class _DenoisingLayer(nn.Module):
    """One encoder layer and its decoder: code, then logits (or values) of the input."""

    def __init__(self, model: MLP, layer: nn.Linear, decoder: nn.Linear) -> None:
        super().__init__()
        self.layer, self.decoder = layer, decoder
        self.activate = model.activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.activate(self.layer(x)))  # type: ignore[no-any-return]


def pretrain(
    model: Classifier,
    pool: Pool,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train each hidden layer to reconstruct its clean input from a masked copy."""
    model = as_net(model, MLP)
    act = model.activate
    size = distributed.world().size
    below: list[nn.Linear] = []

    @torch.no_grad()
    def encode(images: torch.Tensor) -> torch.Tensor:
        x = to_unit(images).flatten(1)
        for trained in below:
            x = act(trained(x))
        return x

    # Inputs in [0, 1] (pixels, sigmoid units) are reconstructed through a sigmoid with
    # cross-entropy; unbounded ones (ReLU, tanh) linearly with squared error.
    losses: dict[str, list[float]] = {}
    for index, layer in enumerate(model.linear_layers()):
        stage = f"dae{index}"
        bounded = index == 0 or model.config.activation == "sigmoid"
        decoder = nn.Linear(layer.out_features, layer.in_features).to(pool.device)
        params = [*layer.parameters(), *decoder.parameters()]
        net = distributed.data_parallel(_DenoisingLayer(model, layer, decoder))
        optimiser = torch.optim.Adam(params, lr=lr)
        losses[stage] = []
        for epoch in epochs(config.epochs, stage):
            total = 0.0
            for batch in pool.batches(config.batch_size, generator):
                clean = encode(batch.images)
                noisy = mask_noise(clean, generator, config.corruption, global_rows=batch.rows)
                out = net(noisy)
                if bounded:
                    loss = F.binary_cross_entropy_with_logits(out, clean, reduction="sum")
                else:
                    loss = F.mse_loss(out, clean, reduction="sum")
                optimiser.zero_grad(set_to_none=True)
                # DDP averages over ranks; times the ranks, the mean over the global batch.
                torch.autograd.backward(loss * (size / batch.rows))
                optimiser.step()
                total += float(loss.detach())
            losses[stage].append(distributed.total(total, pool.device) / len(pool))
            log_epoch(stage, epoch, config.epochs, losses[stage][-1])
        decoders[stage] = decoder
        below.append(layer)
    return losses
