from __future__ import annotations

import logging

import pytest
import torch

from models.experiment import Prepared
from models.nets import CNNConfig, build_classifier
from models.pretraining import PretrainConfig, pretrain
from models.probe import KnnProbe, knn_accuracy


def test_knn_reads_classes_that_sit_apart_and_not_ones_that_are_swapped() -> None:
    memory = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1
    )
    labels = torch.tensor([0, 0, 1])
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05], [0.05, 1.0]]), dim=1)
    assert knn_accuracy(memory, labels, queries, torch.tensor([0, 1]), classes=2, k=2) == 1.0
    assert knn_accuracy(memory, labels, queries, torch.tensor([1, 0]), classes=2, k=2) == 0.0


def test_pretraining_measures_the_probe_after_every_epoch(
    prepared: Prepared, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    model = build_classifier(
        CNNConfig(channels=(4, 8), kernel_size=3, dense=16), prepared.data.shape, 10
    )
    probe = KnnProbe(model, prepared.labeled(3, 0), prepared.val())
    before = probe()
    config = PretrainConfig(epochs=3, batch_size=32, projection_dim=8)
    with caplog.at_level(logging.INFO, logger="models.pretraining"):
        report = pretrain(
            model, prepared.pool_images(), "contrastive", config, torch.Generator().manual_seed(0),
            probe=probe,
        )  # fmt: skip
    assert len(probe.history) == 1 + config.epochs
    assert all(0.0 <= a <= 1.0 for a in probe.history)
    assert probe.history[0] == round(before, 4)
    assert report.losses["contrastive"]
    assert sum("k-NN accuracy" in r.getMessage() for r in caplog.records) == config.epochs
    assert model.training  # the probe put the model back in the mode it found it in
