"""Test-split metrics: accuracy, per-class accuracy, NLL and the confusion matrix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.nets import Classifier, to_unit


@dataclass(frozen=True)
class Metrics:
    """The fields of ``service.manifest.TestMetrics``."""

    accuracy: float
    nll: float
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]
    num_examples: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def predict_logits(model: Classifier, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits ``[N, classes]`` for ``uint8`` images, in eval mode, batch by batch."""
    out = _batched(model, model.forward, images, batch_size)
    return torch.cat(out) if out else torch.zeros(0, model.num_classes)


@torch.no_grad()
def predict_embeddings(
    model: Classifier, images: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Embeddings ``[N, D]`` for ``uint8`` images, in eval mode, batch by batch."""
    out = _batched(model, model.embed, images, batch_size)
    return torch.cat(out) if out else torch.zeros(0, model.embedding_dim)


def _batched(
    model: Classifier,
    run: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int,
) -> list[torch.Tensor]:
    """``run`` over ``images`` batch by batch on the model's device, in eval mode; the model is
    left in the mode it was found in."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [
        run(to_unit(images[i : i + batch_size].to(device))).cpu()
        for i in range(0, len(images), batch_size)
    ]
    model.train(was_training)
    return out


def compute_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Metrics:
    """Metrics of ``logits`` against integer ``labels``."""
    labels = labels.cpu()
    predicted = logits.argmax(1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels.numpy(), predicted.numpy()), 1)
    support = confusion.sum(1)
    per_class = np.divide(np.diag(confusion), support, out=np.zeros(num_classes), where=support > 0)
    n = len(labels)
    return Metrics(
        accuracy=float((predicted == labels).float().mean()) if n else 0.0,
        nll=float(F.cross_entropy(logits, labels)) if n else 0.0,
        per_class_accuracy=[float(v) for v in per_class],
        confusion_matrix=confusion.tolist(),
        num_examples=n,
    )


def evaluate(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> Metrics:
    """Metrics of ``model`` on ``uint8`` images and their labels."""
    return compute_metrics(predict_logits(model, images), labels, model.num_classes)
