"""Supervised pre-training on a source task: the classic transfer start.

The encoder learns to classify the source's labelled images through a head of its own,
thrown away afterwards; fine-tuning then fits the target's head (and the encoder) with the
target's few labels. The source comes from ``--pretrain-dataset`` (another data set, or other
classes of the same one); the target's own pool carries no labels, so it is refused here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import distributed
from models.batches import Pool
from models.errors import ConfigError
from models.nets import Classifier, to_unit
from models.pretraining import PretrainConfig
from models.pretraining.common import epochs, log_epoch


class _SourceTask(nn.Module):
    """The encoder under a throw-away head over the source's classes."""

    def __init__(self, model: Classifier, head: nn.Linear) -> None:
        super().__init__()
        # The model's own head is left out: it gets no gradient here, which DDP refuses.
        self.encoder = nn.ModuleList(m for n, m in model.named_children() if n != "head")
        self.embed, self.head = model.embed, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.embed(x))
        return logits


def pretrain(
    model: Classifier,
    pool: Pool,
    config: PretrainConfig,
    generator: torch.Generator,
    *,
    lr: float,
    decoders: dict[str, nn.Module],
) -> dict[str, list[float]]:
    """Train the encoder to classify the pool's source labels; the model's own head is kept."""
    if pool.labels is None or pool.classes < 2:
        raise ConfigError(
            "supervised pre-training needs labelled source images: pass --pretrain-dataset "
            "with another data set or other classes (e.g. mnist-5k:0-4); the target's own "
            "pool is unlabeled"
        )
    head = nn.Linear(model.embedding_dim, pool.classes).to(pool.device)
    task = _SourceTask(model, head)
    optimiser = torch.optim.Adam(task.parameters(), lr=lr)
    net = distributed.data_parallel(task)
    losses: list[float] = []
    for epoch in epochs(config.epochs, "supervised"):
        total = 0.0
        for batch in pool.batches(config.batch_size, generator):
            assert batch.labels is not None  # a labelled pool labels every batch
            logits = net(to_unit(batch.images))
            loss = F.cross_entropy(logits, batch.labels, reduction="sum")
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss * (distributed.world().size / batch.rows))
            optimiser.step()
            total += float(loss.detach())
        losses.append(distributed.total(total, pool.device) / len(pool))
        log_epoch("supervised", epoch, config.epochs, losses[-1])
    return {"supervised": losses}
