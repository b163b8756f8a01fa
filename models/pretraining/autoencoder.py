"""Greedy layer-wise stacked denoising autoencoders for an MLP (Vincent et al., 2008/2010)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.augment import mask_noise
from models.nets import MLP, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch, minibatches


def pretrain(
    model: Classifier,
    pool: torch.Tensor,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train each hidden layer to reconstruct its clean input from a masked copy."""
    model = as_net(model, MLP)
    data = to_unit(pool).flatten(1)
    act = model.activate
    # Inputs in [0, 1] (pixels, sigmoid units) are reconstructed through a sigmoid with
    # cross-entropy; unbounded ones (ReLU, tanh) linearly with squared error.
    losses: dict[str, list[float]] = {}
    for index, layer in enumerate(model.linear_layers()):
        stage = f"dae{index}"
        bounded = index == 0 or model.config.activation == "sigmoid"
        decoder = nn.Linear(layer.out_features, layer.in_features).to(data.device)
        params = [*layer.parameters(), *decoder.parameters()]
        optimiser = torch.optim.Adam(params, lr=lr)
        losses[stage] = []
        for epoch in epochs(config.epochs, stage):
            total = 0.0
            for idx in minibatches(len(data), config.batch_size, generator):
                clean = data[idx]
                out = decoder(act(layer(mask_noise(clean, generator, config.corruption))))
                if bounded:
                    loss = F.binary_cross_entropy_with_logits(out, clean, reduction="sum")
                else:
                    loss = F.mse_loss(out, clean, reduction="sum")
                optimiser.zero_grad(set_to_none=True)
                torch.autograd.backward(loss / len(idx))
                optimiser.step()
                total += float(loss.detach())
            losses[stage].append(total / len(data))
            log_epoch(stage, epoch, config.epochs, losses[stage][-1])
        decoders[stage] = decoder
        with torch.no_grad():
            data = act(layer(data))
    return losses
