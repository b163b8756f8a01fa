"""What ``/v1/models`` says about each model, taken from its variants' manifests."""

from __future__ import annotations

from typing import Any

from service.manifest import Manifest
from service.runtime import LoadedVariant


def summary(manifest: Manifest) -> str:
    """What the variant is, in one sentence: its start, what it learnt from, its test accuracy."""
    training, metrics = manifest.training, manifest.test_metrics
    labels = f"{training.num_labeled:,} labels"
    if training.labels_per_class:
        labels += f" ({training.labels_per_class:,} per class)"
    mode = str(training.fine_tuning.get("mode", "supervised"))
    if mode != "supervised":
        learnt = f"{labels} and the unlabeled images together ({mode})"
    else:
        learnt = f"{labels} alone" if manifest.pretraining.method == "none" else labels
    if manifest.pretraining.method == "none":
        start = "starts from random weights"
    else:
        start = (
            f"is pre-trained ({manifest.pretraining.method}) on "
            f"{training.num_unlabeled:,} unlabeled images"
        )
    return (
        f"{manifest.variant} {start}, then is fine-tuned on {learnt}; test accuracy "
        f"{100 * metrics.accuracy:.1f}% on {metrics.num_examples:,} held-out images."
    )


def describe_model(
    variants: dict[str, LoadedVariant], versions: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """One model: classes, input spec, embedding size, and each variant's provenance and
    metrics (of its default version), with every loaded version of each in ``versions``."""
    first = next(iter(variants.values())).manifest
    described = []
    for loaded in variants.values():
        m = loaded.manifest
        described.append(
            {
                "variant": m.variant,
                "summary": summary(m),
                "version": m.version,
                "versions": (versions or {}).get(m.variant, [m.version]),
                "architecture": m.architecture.model_dump(mode="json"),
                "pretraining": m.pretraining.model_dump(mode="json"),
                "training": m.training.model_dump(mode="json"),
                "test_metrics": m.test_metrics.model_dump(mode="json"),
                "onnx_sha256": m.onnx_sha256,
                "headstart_version": m.headstart_version,
                "created_at": m.created_at.isoformat(),
            }
        )
    return {
        "name": first.name,
        "classes": list(first.class_names),
        "input": first.input.model_dump(mode="json"),
        "embedding_dim": first.embedding_dim,
        "variants": described,
    }
