"""Tiny real models and repositories, built in the test session.

The ONNX graph has the real contract's shape: ``image`` uint8 ``[N, C, H, W]``
in, ``probabilities`` ``[N, classes]`` and ``embedding`` ``[N, D]`` out, with
normalisation inside the graph. Its weights are seeded random numbers, so the
two variants give different but deterministic answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.manifest import ONNX_FILE, Manifest, sha256_file

if TYPE_CHECKING:
    from flask.testing import FlaskClient


def tiny_onnx_model(
    *,
    channels: int = 1,
    height: int = 28,
    width: int = 28,
    num_classes: int = 10,
    embedding_dim: int = 16,
    seed: int = 0,
) -> onnx.ModelProto:
    """Build ``uint8 image -> (probabilities, embedding)``: scale, flatten, dense+ReLU, dense."""
    rng = np.random.default_rng(seed)
    features = channels * height * width
    w1 = rng.normal(0, 1 / np.sqrt(features), (features, embedding_dim)).astype(np.float32)
    w2 = rng.normal(0, 1 / np.sqrt(embedding_dim), (embedding_dim, num_classes)).astype(np.float32)
    initializers = [
        numpy_helper.from_array(np.array(1 / 255, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(w2, "w2"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["x_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x_f", "scale"], ["x_s"]),
        helper.make_node("Reshape", ["x_s", "flat_shape"], ["x_flat"]),
        helper.make_node("MatMul", ["x_flat", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "w2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", channels, height, width])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", num_classes]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", embedding_dim]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def manifest_for(
    name: str,
    variant: str,
    sha256: str,
    *,
    channels: int = 1,
    height: int = 28,
    width: int = 28,
    num_classes: int = 10,
    embedding_dim: int = 16,
    version: str = "1",
) -> Manifest:
    """A valid manifest describing a tiny model."""
    method = "none" if variant == "baseline" else "dae"
    eye = np.eye(num_classes, dtype=int).tolist()
    return Manifest.model_validate(
        {
            "name": name,
            "variant": variant,
            "version": version,
            "architecture": {"kind": "mlp", "settings": {"hidden": [embedding_dim]}},
            "pretraining": {"method": method, "settings": {}},
            "input": {"channels": channels, "height": height, "width": width},
            "class_names": [str(i) for i in range(num_classes)],
            "embedding_dim": embedding_dim,
            "training": {
                "dataset": "synthetic",
                "labels_per_class": 10,
                "num_labeled": 10 * num_classes,
                "num_unlabeled": 0 if variant == "baseline" else 1000,
                "num_test": num_classes,
                "split_seed": 0,
                "seed": 0,
            },
            "test_metrics": {
                "accuracy": 1.0,
                "nll": 0.1,
                "per_class_accuracy": [1.0] * num_classes,
                "confusion_matrix": eye,
                "num_examples": num_classes,
            },
            "onnx_sha256": sha256,
            "headstart_version": "0.0.0",
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


def write_variant(
    root: Path,
    name: str,
    variant: str,
    *,
    seed: int | None = None,
    version: str | None = None,
    **shape: int,
) -> Path:
    """Export a tiny model and its manifest to ``root/name/variant`` (or, given a
    ``version``, to ``root/name/variant/version``); return that directory."""
    directory = root / name / variant
    if version is not None:
        directory = directory / version
    directory.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = 0 if variant == "pretrained" else 1
    onnx.save(tiny_onnx_model(seed=seed, **shape), directory / ONNX_FILE)
    manifest = manifest_for(
        name, variant, sha256_file(directory / ONNX_FILE), version=version or "1", **shape
    )
    manifest.write(directory)
    return directory


def write_repository(root: Path, names: tuple[str, ...] = ("tiny",), **shape: int) -> Path:
    """A repository with both variants of each named model."""
    for name in names:
        for variant in ("pretrained", "baseline"):
            write_variant(root, name, variant, **shape)
    return root


def admin_client(repository: Path, scratch: Path, admin_token: str) -> FlaskClient:
    """A test client of the app serving ``repository`` with ``admin_token``, its state and the
    workers' shared control folder under ``scratch``."""
    from service.app import create_app
    from service.settings import Settings

    settings = Settings(
        model_repository=repository,
        admin_token=admin_token,
        state_directory=scratch / "state",
        control_directory=scratch / "control",
    )
    return create_app(settings).test_client()
