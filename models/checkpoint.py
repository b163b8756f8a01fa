"""Self-describing checkpoints: weights in safetensors, the config in its JSON metadata.

Loading never unpickles: safetensors holds only tensors, and the model is rebuilt from the
recorded architecture before the weights are copied in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.errors import DataError
from models.nets import Classifier, arch_config, arch_kind, build_classifier

FORMAT = "headstart-checkpoint/1"


@dataclass
class Checkpoint:
    """A classifier plus everything needed to rebuild, evaluate and export it."""

    model: Classifier
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance: stage, dataset, splits, methods, recipes, metrics."""

    @property
    def class_names(self) -> list[str]:
        return list(self.info["class_names"])


def save_checkpoint(path: Path, model: Classifier, info: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``info`` (JSON-serialisable) to ``path``."""
    header = {
        "format": FORMAT,
        "arch": arch_kind(model.config),
        "arch_settings": plain_json(model.config.__dict__),
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "info": info,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"headstart": json.dumps(header)})
    return path


def load_checkpoint(path: Path, device: torch.device | None = None) -> Checkpoint:
    """Rebuild the classifier saved at ``path``; ``DataError`` names the file when it is bad."""
    if not path.is_file():
        raise DataError(f"{path}: checkpoint does not exist")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    try:
        header = json.loads(metadata["headstart"])
        if header.get("format") != FORMAT:
            raise ValueError(f"format {header.get('format')!r}, expected {FORMAT!r}")
        config = arch_config(header["arch"], header["arch_settings"])
        shape = tuple(int(v) for v in header["input_shape"])
        model = build_classifier(config, (shape[0], shape[1], shape[2]), int(header["num_classes"]))
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise DataError(f"{path}: not a headstart checkpoint ({exc})") from None
    if device is not None:
        model.to(device)
    model.eval()
    return Checkpoint(model=model, info=dict(header["info"]))


def plain_json(value: Any) -> Any:
    """Tuples to lists, recursively, so JSON round trips compare equal."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value
