"""The manifest: the one contract between the offline exporter and the service.

The exporter writes a ``manifest.json`` beside every ``model.onnx``; the service
reads it, verifies the file's hash and serves what it describes. This module
must stay importable without torch.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION: Literal[1] = 1
"""The manifest schema version this headstart writes and reads."""

VARIANTS: tuple[str, ...] = ("pretrained", "baseline")
"""Every model is served as these two variants, in this order."""

MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"

Variant = Literal["pretrained", "baseline"]
Polarity = Literal["light_on_dark", "dark_on_light"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Framing(_Frozen):
    """How the training images were framed; the service frames every v1 image the same way."""

    method: Literal["ink_box_mass_centre"] = "ink_box_mass_centre"
    """MNIST's: crop to the ink's bounding box, fit into ``box`` x ``box`` keeping the aspect
    ratio, place in the frame so the ink's centre of mass is at its centre."""
    box: int = Field(default=20, gt=0, le=4096)
    """The side of the square the ink is fitted into (20 in MNIST's 28x28)."""


MNIST_FRAMING = Framing()
"""MNIST's framing: the ink fitted into 20x20 and centred by mass in 28x28."""


class InputSpec(_Frozen):
    """What the ONNX graph's ``image`` input expects: ``uint8 [N, C, H, W]``."""

    channels: Literal[1, 3]
    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)
    dtype: Literal["uint8"] = "uint8"
    polarity: Polarity = "light_on_dark"
    """``light_on_dark`` for MNIST-like strokes; the service inverts other images."""
    framing: Framing | None = None
    """How the training images were framed; ``None`` (and manifests that predate the field):
    not framed, so the service only scales each image into the frame."""

    @model_validator(mode="after")
    def _box_fits(self) -> InputSpec:
        if self.framing is not None and self.framing.box > min(self.height, self.width):
            raise ValueError(
                f"framing.box {self.framing.box} does not fit the {self.height}x{self.width} input"
            )
        return self


class Architecture(_Frozen):
    """The network the variant was built from."""

    kind: Literal["mlp", "cnn"]
    settings: dict[str, Any] = Field(default_factory=dict)
    """The architecture's config as the training side built it (layer sizes, activation…)."""


class Pretraining(_Frozen):
    """How the starting weights were obtained; ``none`` for the random-init baseline."""

    method: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    """The method's name, as provenance. The training side's registry (``models.methods``)
    is the one list of methods and checks it; the service only tells ``none`` apart, so a
    repository trained with a newer method still loads here."""
    settings: dict[str, Any] = Field(default_factory=dict)


class TrainingData(_Frozen):
    """The data a variant saw."""

    dataset: str = Field(min_length=1)
    labels_per_class: int | None = Field(default=None, gt=0)
    """Labeled images per class used for fine-tuning; ``None`` when all were used."""
    num_labeled: int = Field(ge=0)
    num_unlabeled: int = Field(ge=0)
    """Unlabeled images the variant learnt from, in pre-training or in a semi-supervised
    fine-tuning mode (0 for the baseline, which learns from the labels alone)."""
    num_test: int = Field(ge=0)
    split_seed: int
    seed: int
    fine_tuning: dict[str, Any] = Field(default_factory=dict)
    """The fine-tuning recipe: its ``mode`` (``supervised``, or one that learns from the
    unlabeled pool too, with that mode's settings under ``semi``), then the supervised recipe
    (optimiser, learning rate, epochs, augmentation…) that both variants share."""


class TestMetrics(_Frozen):
    """Measured on the held-out test split, which no training step saw."""

    __test__ = False  # not a pytest test class, despite the name

    accuracy: float = Field(ge=0.0, le=1.0)
    nll: float = Field(ge=0.0)
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]]
    num_examples: int = Field(ge=0)


class Manifest(_Frozen):
    """Everything the service and a reader need to know about one exported variant."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.]*$", max_length=64)
    """The model's name; its V2 names are ``<name>-<variant>``, so it holds no hyphen."""
    variant: Variant
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9_.]+$")
    architecture: Architecture
    pretraining: Pretraining
    input: InputSpec
    class_names: list[str] = Field(min_length=2)
    embedding_dim: int = Field(gt=0)
    training: TrainingData
    test_metrics: TestMetrics
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    headstart_version: str
    created_at: datetime

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        n = len(self.class_names)
        if len(set(self.class_names)) != n:
            raise ValueError("class_names has duplicates")
        if len(self.test_metrics.per_class_accuracy) != n:
            raise ValueError(f"test_metrics.per_class_accuracy has not {n} entries")
        if len(self.test_metrics.confusion_matrix) != n or any(
            len(row) != n for row in self.test_metrics.confusion_matrix
        ):
            raise ValueError(f"test_metrics.confusion_matrix is not {n}x{n}")
        if (self.variant == "baseline") != (self.pretraining.method == "none"):
            raise ValueError(
                f"variant {self.variant!r} does not fit pre-training method "
                f"{self.pretraining.method!r} (the baseline, and only it, uses 'none')"
            )
        return self

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def write(self, directory: Path) -> Path:
        """Write ``manifest.json`` into ``directory`` and return its path."""
        path = directory / MANIFEST_FILE
        path.write_text(self.to_json(), encoding="utf-8")
        return path


class ManifestError(ValueError):
    """A manifest that cannot be used; the message says why."""


def parse_manifest(text: str) -> Manifest:
    """Parse and validate a manifest, with one readable message on failure."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ManifestError(f"not valid JSON ({exc.msg} at {where})") from None
    if not isinstance(raw, dict):
        raise ManifestError("not a JSON object")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"schema_version {version!r} is not supported (this headstart reads {SCHEMA_VERSION})"
        )
    from pydantic import ValidationError

    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "manifest"
            problems.append(f"{where}: {err['msg']}")
        raise ManifestError("; ".join(problems)) from None


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large models do not sit in memory twice."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
