from __future__ import annotations

import pytest
import torch

from models.errors import ConfigError
from models.nets import CNN, MLP, CNNConfig, MLPConfig, build_classifier, to_unit


def test_mlp_exposes_embedding_and_logits() -> None:
    model = build_classifier(MLPConfig(hidden=(20, 12)), (1, 8, 8), 10)
    x = to_unit(torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8))
    assert model.embed(x).shape == (5, 12)
    assert model.embedding_dim == 12
    assert model(x).shape == (5, 10)
    assert list(model.weight_layers()) == ["layers.0", "layers.1", "head"]


def test_cnn_exposes_embedding_and_logits() -> None:
    model = build_classifier(CNNConfig(channels=(4, 8), dense=16), (3, 12, 10), 4)
    x = torch.rand(2, 3, 12, 10)
    assert model.embed(x).shape == (2, 16)
    assert model(x).shape == (2, 4)
    assert isinstance(model, CNN)
    assert model.feature_shape == (8, 3, 2)


def test_initialisation_fits_the_activation() -> None:
    torch.manual_seed(0)
    sigmoid = build_classifier(MLPConfig(hidden=(400,), activation="sigmoid"), (1, 28, 28), 10)
    assert isinstance(sigmoid, MLP)
    w = sigmoid.layers[0].weight
    glorot_bound = (6 / (784 + 400)) ** 0.5  # xavier_uniform, gain 1
    assert float(w.detach().abs().max()) <= glorot_bound
    assert float(w.detach().abs().max()) > 0.9 * glorot_bound
    relu = build_classifier(MLPConfig(hidden=(400,), activation="relu"), (1, 28, 28), 10)
    he_std = (2 / 784) ** 0.5
    assert float(relu.weight_layers()["layers.0"].weight.detach().std()) == pytest.approx(
        he_std, rel=0.05
    )
    assert all(float(m.bias.detach().abs().max()) == 0 for m in relu.weight_layers().values())


def test_too_many_pooling_blocks_for_the_image_is_an_error() -> None:
    with pytest.raises(ConfigError, match="4 pooling blocks do not fit 8x8"):
        build_classifier(CNNConfig(channels=(2, 2, 2, 2)), (1, 8, 8), 10)
