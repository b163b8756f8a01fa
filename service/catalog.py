"""What ``/v1/models`` says about each model, taken from its variants' manifests."""

from __future__ import annotations

from typing import Any

from service.runtime import LoadedVariant


def describe_model(variants: dict[str, LoadedVariant]) -> dict[str, Any]:
    """One model: classes, input spec, embedding size, and each variant's provenance and metrics."""
    first = next(iter(variants.values())).manifest
    described = []
    for loaded in variants.values():
        m = loaded.manifest
        described.append(
            {
                "variant": m.variant,
                "version": m.version,
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
