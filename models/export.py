"""ONNX export of a trained classifier, its parity check, and its manifest.

The graph takes ``image: uint8 [N, C, H, W]`` (N dynamic), scales inside, and returns
``probabilities: float32 [N, classes]`` and ``embedding: float32 [N, D]`` in one run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.checkpoint import plain_json
from models.errors import ExportError
from models.evaluate import Metrics
from models.nets import Classifier, Exportable, arch_kind
from models.placement import place, plan
from service.manifest import ONNX_FILE, Framing, Manifest, sha256_file
from service.version import __version__

OPSET = 18
PARITY_IMAGES = 64
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Parity:
    """Largest absolute difference between ONNX Runtime and torch on the same images."""

    probabilities: float
    embedding: float
    num_images: int


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known, harmless chatter, and nothing else.

    torch 2.13's ``torch.export`` path logs that torchvision's optional ops are not
    registered, onnxscript's optimiser logs every pass at INFO, and torch emits a
    FutureWarning from its own pytree internals; none of it concerns the graph produced.
    """
    loggers = {
        "torch.onnx._internal.exporter._registration": logging.ERROR,
        "onnxscript": logging.WARNING,
        "onnx_ir": logging.WARNING,
    }
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
            )
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def export_onnx(model: Classifier, path: Path) -> None:
    """Export ``model`` (on any device) as the contract's uint8-in graph to ``path``."""
    wrapper = Exportable(model).to("cpu").eval()
    example = torch.zeros((2, *model.input_shape), dtype=torch.uint8)
    batch = torch.export.Dim("N", min=1, max=65536)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            input_names=["image"],
            output_names=["probabilities", "embedding"],
            dynamic_shapes={"image": {0: batch}},
            opset_version=OPSET,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path))


def check_onnx(path: Path, model: Classifier, images: torch.Tensor) -> Parity:
    """Run ``onnx.checker`` and compare ONNX Runtime with torch; ``ExportError`` on mismatch."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: onnx.checker rejected the graph: {exc}") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = images[:PARITY_IMAGES].cpu()
    ort_probs, ort_embed = session.run(["probabilities", "embedding"], {"image": batch.numpy()})
    wrapper = Exportable(model).eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        probs, embed = (t.cpu().numpy() for t in wrapper(batch.to(device)))
    parity = Parity(
        probabilities=float(np.abs(ort_probs - probs).max()),
        embedding=float(np.abs(ort_embed - embed).max()),
        num_images=len(batch),
    )
    if not parity.probabilities <= PARITY_TOLERANCE:
        raise ExportError(
            f"{path}: ONNX Runtime and torch disagree on {parity.num_images} held-out images: "
            f"max |dp| = {parity.probabilities:.3g} > {PARITY_TOLERANCE:g} "
            f"(embedding max |de| = {parity.embedding:.3g})"
        )
    return parity


@dataclass(frozen=True)
class Provenance:
    """What the manifest records beyond the model itself."""

    name: str
    variant: str
    method: str
    pretrain_settings: dict[str, Any]
    class_names: list[str]
    polarity: str
    framing: Framing | None
    dataset: str
    labels_per_class: int | None
    num_labeled: int
    num_unlabeled: int
    split_seed: int
    seed: int
    fine_tuning: dict[str, Any]
    version: str = "1"


def build_manifest(
    model: Classifier, provenance: Provenance, metrics: Metrics, onnx_sha256: str
) -> Manifest:
    """The manifest for ``model``; pydantic validates every field."""
    c, h, w = model.input_shape
    return Manifest.model_validate(
        {
            "name": provenance.name,
            "variant": provenance.variant,
            "version": provenance.version,
            "architecture": {
                "kind": arch_kind(model.config),
                "settings": plain_json(model.config.__dict__),
            },
            "pretraining": {"method": provenance.method, "settings": provenance.pretrain_settings},
            "input": {
                "channels": c,
                "height": h,
                "width": w,
                "polarity": provenance.polarity,
                "framing": provenance.framing,
            },
            "class_names": provenance.class_names,
            "embedding_dim": model.embedding_dim,
            "training": {
                "dataset": provenance.dataset,
                "labels_per_class": provenance.labels_per_class,
                "num_labeled": provenance.num_labeled,
                "num_unlabeled": provenance.num_unlabeled,
                "num_test": metrics.num_examples,
                "split_seed": provenance.split_seed,
                "seed": provenance.seed,
                "fine_tuning": provenance.fine_tuning,
            },
            "test_metrics": metrics.as_dict(),
            "onnx_sha256": onnx_sha256,
            "headstart_version": __version__,
            "created_at": datetime.now(UTC),
        }
    )


def _share(folder: Path) -> None:
    """Make an exported variant readable by every user, whatever the umask.

    mkdtemp makes its folder private (0700); renamed into place by a build that runs as
    root, it would hide the model from a service that runs as another user.
    """
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o755 if path.is_dir() else 0o644)


def export_variant(
    model: Classifier,
    repository: Path,
    provenance: Provenance,
    metrics: Metrics,
    parity_images: torch.Tensor,
    *,
    replace: bool = True,
    make_default: bool = False,
) -> tuple[Path, Manifest, Parity]:
    """Export, check and describe one variant into ``<repository>/<name>/<variant>``: in
    place of what is there (``replace``), or as its next version, which becomes the default
    only with ``make_default``.

    The files are written to a hidden sibling folder and moved into place only once the
    graph passed every check, so a failed export never leaves a half-written variant.
    """
    model_dir = repository / provenance.name
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / provenance.variant
    placement = plan(target, replace=replace, make_default=make_default)
    provenance = dataclasses.replace(provenance, version=placement.version)
    staging = Path(tempfile.mkdtemp(prefix=f".{provenance.variant}-", dir=model_dir))
    try:
        onnx_path = staging / ONNX_FILE
        export_onnx(model, onnx_path)
        parity = check_onnx(onnx_path, model, parity_images)
        manifest = build_manifest(model, provenance, metrics, sha256_file(onnx_path))
        manifest.write(staging)
        _share(staging)
        placed = place(staging, target, placement)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return placed, manifest, parity
