"""A cheap early signal of pre-training: k-NN accuracy of the encoder's embedding.

The labelled images are the memory and the validation images are asked: each is given the
class with the largest similarity-weighted vote among its ``k`` most cosine-similar labelled
images (Wu et al., 2018). No weight is trained, so it costs one forward pass over a few hundred
images per epoch, and it tells within minutes whether an encoder has learnt classes worth
fine-tuning from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from models.evaluate import predict_embeddings
from models.nets import Classifier

TEMPERATURE = 0.1
"""Sharpness of the vote: a neighbour's weight is ``exp(similarity / TEMPERATURE)``."""


def embeddings(model: Classifier, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised embeddings ``[N, D]`` of ``uint8`` images, in eval mode."""
    return F.normalize(predict_embeddings(model, images), dim=1)


def knn_accuracy(
    memory: torch.Tensor,
    memory_labels: torch.Tensor,
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    *,
    classes: int,
    k: int = 10,
) -> float:
    """Accuracy of the weighted k-NN vote of normalised ``memory`` rows on ``queries``."""
    k = min(k, len(memory))
    similarity = queries @ memory.T  # [Q, M]
    nearest, index = similarity.topk(k, dim=1)
    votes = torch.zeros(len(queries), classes)
    votes.scatter_add_(1, memory_labels[index], torch.exp(nearest / TEMPERATURE))
    return float((votes.argmax(1) == query_labels).float().mean())


@dataclass
class KnnProbe:
    """Measures ``model``'s k-NN accuracy when called, and keeps every measurement."""

    model: Classifier
    labelled: tuple[torch.Tensor, torch.Tensor]
    asked: tuple[torch.Tensor, torch.Tensor]
    k: int = 10
    history: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        accuracy = knn_accuracy(
            embeddings(self.model, self.labelled[0]),
            self.labelled[1].cpu(),
            embeddings(self.model, self.asked[0]),
            self.asked[1].cpu(),
            classes=self.model.num_classes,
            k=self.k,
        )
        self.history.append(round(accuracy, 4))
        return accuracy
