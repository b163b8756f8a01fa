"""A convolutional denoising autoencoder whose encoder is the CNN's trunk (Masci et al., 2011)."""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from models.augment import mask_noise
from models.nets import CNN, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch, minibatches


class ConvDecoder(nn.Module):
    """Mirror of the trunk: per block, upsample to the pre-pool size, then convolve back."""

    def __init__(self, model: CNN) -> None:
        super().__init__()
        c, h, w = model.input_shape
        ins = (c, *model.config.channels)
        k = model.config.kernel_size
        self.convs = nn.ModuleList(
            nn.Conv2d(b, a, k, padding=k // 2) for a, b in reversed(list(pairwise(ins)))
        )
        blocks = len(model.config.channels)
        self.sizes = [(h >> i, w >> i) for i in reversed(range(blocks))]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for i, (conv, size) in enumerate(zip(self.convs, self.sizes, strict=True)):
            z = conv(F.interpolate(z, size=size, mode="nearest"))
            if i < len(self.convs) - 1:
                z = torch.relu(z)
        return z  # logits of the reconstructed image, [N, C, H, W]


def pretrain(
    model: Classifier,
    pool: torch.Tensor,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train trunk + decoder to reconstruct clean images from masked ones."""
    model = as_net(model, CNN)
    decoder = ConvDecoder(model).to(pool.device)
    params = [*model.convs.parameters(), *decoder.parameters()]
    optimiser = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    for epoch in epochs(config.epochs, "cae"):
        total = 0.0
        for idx in minibatches(len(pool), config.batch_size, generator):
            clean = to_unit(pool[idx])
            recon = decoder(model.features(mask_noise(clean, generator, config.corruption)))
            loss = F.binary_cross_entropy_with_logits(recon, clean, reduction="sum")
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss / len(idx))
            optimiser.step()
            total += float(loss.detach())
        losses.append(total / len(pool))
        log_epoch("cae", epoch, config.epochs, losses[-1])
    decoders["cae"] = decoder
    return {"cae": losses}
