from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import DataError
from models.nets import CNNConfig, build_classifier


def test_round_trip_rebuilds_the_model(tmp_path: Path) -> None:
    model = build_classifier(CNNConfig(channels=(3, 5), dense=7), (1, 8, 8), 4)
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"stage": "x", "class_names": "abcd"})
    loaded = load_checkpoint(path)
    assert loaded.info == {"stage": "x", "class_names": "abcd"}
    assert loaded.model.config == model.config
    x = torch.rand(3, 1, 8, 8)
    model.eval()
    assert torch.equal(loaded.model(x), model(x))


def test_a_pickle_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.safetensors"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(DataError, match=rf"{path}: not a readable safetensors checkpoint"):
        load_checkpoint(path)


def test_foreign_safetensors_file_is_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(DataError, match=rf"{path}: not a headstart checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
