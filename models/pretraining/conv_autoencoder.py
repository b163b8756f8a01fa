"""A convolutional denoising autoencoder whose encoder is the CNN's trunk (Masci et al., 2011).

Data-parallel: trunk and decoder train as one ``DistributedDataParallel`` module.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from models import distributed
from models.augment import mask_noise
from models.batches import Pool
from models.nets import CNN, Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import as_net, epochs, log_epoch


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


class _Autoencoder(nn.Module):
    """The trunk and its mirror; only their parameters are shared between ranks."""

    def __init__(self, model: CNN, decoder: ConvDecoder) -> None:
        super().__init__()
        self.convs, self.decoder = model.convs, decoder
        self.features = model.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(x))  # type: ignore[no-any-return]


def pretrain(
    model: Classifier,
    pool: Pool,
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
    net = distributed.data_parallel(_Autoencoder(model, decoder))
    size = distributed.world().size
    optimiser = torch.optim.Adam(params, lr=lr)
    losses: list[float] = []
    for epoch in epochs(config.epochs, "cae"):
        total = 0.0
        for batch in pool.batches(config.batch_size, generator):
            clean = to_unit(batch.images)
            recon = net(mask_noise(clean, generator, config.corruption, global_rows=batch.rows))
            loss = F.binary_cross_entropy_with_logits(recon, clean, reduction="sum")
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss * (size / batch.rows))
            optimiser.step()
            total += float(loss.detach())
        losses.append(distributed.total(total, pool.device) / len(pool))
        log_epoch("cae", epoch, config.epochs, losses[-1])
    decoders["cae"] = decoder
    return {"cae": losses}
