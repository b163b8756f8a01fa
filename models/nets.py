"""The two classifier architectures: a deep MLP and a small CNN, both exposing ``embed``.

Both take float images in ``[0, 1]`` shaped ``[N, C, H, W]``; :class:`Exportable` wraps one so
the graph takes ``uint8`` and scales inside. ``embed`` returns the penultimate features, the
``embedding`` the service serves; ``forward`` returns the logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import torch
from torch import nn

from models.defaults import ARCHS, Arch
from models.errors import ConfigError

Activation = Literal["sigmoid", "relu", "tanh"]


@dataclass(frozen=True)
class MLPConfig:
    """A deep fully connected net; the default mirrors the deep-belief-net literature."""

    hidden: tuple[int, ...] = (500, 500, 2000)
    activation: Activation = "sigmoid"  # sigmoid units are what an RBM stack unrolls into
    dropout: float = 0.0


@dataclass(frozen=True)
class CNNConfig:
    """Conv(k) -> ReLU -> MaxPool(2) blocks, then one dense ReLU layer (the embedding)."""

    channels: tuple[int, ...] = (32, 64)
    kernel_size: int = 5
    dense: int = 128
    dropout: float = 0.0


ArchConfig = MLPConfig | CNNConfig


def arch_config(kind: str, settings: dict[str, Any] | None = None) -> ArchConfig:
    """Build the config of architecture ``kind`` from plain settings (e.g. a checkpoint's)."""
    raw = dict(settings or {})
    for key in ("hidden", "channels"):
        if key in raw:
            raw[key] = tuple(int(v) for v in raw[key])
    try:
        if kind == "mlp":
            return MLPConfig(**raw)
        if kind == "cnn":
            return CNNConfig(**raw)
    except TypeError as exc:
        raise ConfigError(f"bad {kind} settings {settings}: {exc}") from None
    raise ConfigError(f"unknown architecture {kind!r} (expected one of: {', '.join(ARCHS)})")


def check_fits(config: ArchConfig, input_shape: tuple[int, int, int]) -> None:
    """Raise a ``ConfigError`` when ``config`` cannot take images of ``input_shape``."""
    if isinstance(config, CNNConfig):
        _, h, w = input_shape
        blocks = len(config.channels)
        if blocks < 1 or h >> blocks < 1 or w >> blocks < 1:
            raise ConfigError(
                f"{blocks} pooling blocks do not fit {h}x{w} images (each halves the size)"
            )


def arch_kind(config: ArchConfig) -> Arch:
    return "mlp" if isinstance(config, MLPConfig) else "cnn"


def _activation(name: Activation) -> nn.Module:
    module: nn.Module = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[name]()
    return module


def _init_linear_or_conv(module: nn.Linear | nn.Conv2d, activation: Activation) -> None:
    # The baseline must not be a strawman: Glorot for saturating units, He for ReLU.
    if activation == "relu":
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    else:
        nn.init.xavier_uniform_(module.weight, gain=nn.init.calculate_gain(activation))
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class Classifier(nn.Module):
    """Common interface: ``embed(x) -> [N, D]``, ``forward(x) -> logits [N, classes]``."""

    input_shape: tuple[int, int, int]
    num_classes: int
    embedding_dim: int
    config: ArchConfig

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head_layer(self) -> nn.Linear:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head_layer()(self.embed(x))
        return logits

    def weight_layers(self) -> dict[str, nn.Linear | nn.Conv2d]:
        """Every layer with a weight matrix, by name, input side first."""
        return {
            name: module
            for name, module in self.named_modules()
            if isinstance(module, nn.Linear | nn.Conv2d)
        }


class MLP(Classifier):
    """Flatten -> [Linear -> activation] x len(hidden) -> Linear head."""

    config: MLPConfig

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, config: MLPConfig
    ) -> None:
        super().__init__()
        if not config.hidden or any(h < 1 for h in config.hidden):
            raise ConfigError(f"mlp hidden sizes must be positive, got {config.hidden}")
        self.input_shape, self.num_classes, self.config = input_shape, num_classes, config
        sizes = (input_shape[0] * input_shape[1] * input_shape[2], *config.hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))
        self.act = _activation(config.activation)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(sizes[-1], num_classes)
        self.embedding_dim = sizes[-1]
        for layer in self.weight_layers().values():
            _init_linear_or_conv(layer, config.activation)

    def linear_layers(self) -> list[nn.Linear]:
        """The hidden layers, input side first (what greedy pre-training fills)."""
        return [layer for layer in self.layers if isinstance(layer, nn.Linear)]

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(x)
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # [N, C*H*W]
        for layer in self.linear_layers():
            h = self.drop(self.activate(layer(h)))
        return h  # [N, hidden[-1]]

    def head_layer(self) -> nn.Linear:
        return self.head


class CNN(Classifier):
    """[Conv -> ReLU -> MaxPool(2)] x len(channels) -> Linear -> ReLU (embedding) -> head."""

    config: CNNConfig

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, config: CNNConfig
    ) -> None:
        super().__init__()
        check_fits(config, input_shape)
        c, h, w = input_shape
        blocks = len(config.channels)
        self.input_shape, self.num_classes, self.config = input_shape, num_classes, config
        ins = (c, *config.channels)
        pad = config.kernel_size // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, config.kernel_size, padding=pad) for a, b in pairwise(ins)
        )
        self.pool = nn.MaxPool2d(2)
        self.feature_shape = (config.channels[-1], h >> blocks, w >> blocks)
        flat = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.dense = nn.Linear(flat, config.dense)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.dense, num_classes)
        self.embedding_dim = config.dense
        for layer in self.weight_layers().values():
            _init_linear_or_conv(layer, "relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional trunk: ``[N, C, H, W] -> [N, channels[-1], H/2^b, W/2^b]``."""
        for conv in self.convs:
            x = self.pool(torch.relu(conv(x)))
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.drop(torch.relu(self.dense(self.features(x).flatten(1))))
        return out  # [N, dense]

    def head_layer(self) -> nn.Linear:
        return self.head


def build_classifier(
    config: ArchConfig, input_shape: tuple[int, int, int], num_classes: int
) -> Classifier:
    """Build a freshly initialised classifier (Glorot or He by activation, zero biases)."""
    if isinstance(config, MLPConfig):
        return MLP(input_shape, num_classes, config)
    return CNN(input_shape, num_classes, config)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """``uint8 [N, C, H, W]`` -> float in ``[0, 1]``: the one normalisation, also in ONNX.

    The float is torch's default dtype, float32 unless a caller chose another (the
    data-parallel equivalence test trains in float64).
    """
    return images.to(torch.get_default_dtype()) * (1.0 / 255.0)


class Exportable(nn.Module):
    """What ONNX sees: ``uint8 image -> (probabilities, embedding)``."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.model.embed(to_unit(image))
        probabilities = torch.softmax(self.model.head_layer()(embedding), dim=-1)
        return probabilities, embedding
