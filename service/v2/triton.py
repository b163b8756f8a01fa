"""Triton's extensions in Triton's JSON shapes: model configuration, statistics, repository index.

Triton's own tools ask for these before anything else: ``perf_analyzer`` and
``tritonclient``'s ``get_model_config`` read the configuration, ``get_inference_statistics``
the statistics and ``get_model_repository_index`` the index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.metrics import VariantCounts
from service.runtime import LoadedVariant, Unavailable
from service.v2.metadata import PLATFORM, model_spec
from service.v2.validation import TensorSpec

BACKEND = "onnxruntime"
READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
_NS = 1e9
LOADING_NOT_SUPPORTED = (
    "loading and unloading models over gRPC is not supported: use POST "
    "/v2/repository/models/{name}/load or /unload over HTTP, with the admin token"
)
"""The gRPC answer to the model repository extension's load and unload."""


def model_config(
    variant: LoadedVariant, max_batch_size: int, batching: tuple[int, float] | None = None
) -> dict[str, Any]:
    """The model configuration as Triton's ``GET /v2/models/{name}/config`` returns it.

    The first dimension of every tensor is the batch, so, as in Triton's configuration,
    ``dims`` leave it out and ``max_batch_size`` bounds it. ``batching`` is the dynamic
    batcher's most images per run and longest wait in milliseconds, when it is on.
    """
    spec = model_spec(variant.manifest)
    version = spec.version
    policy: dict[str, Any] = (
        {"specific": {"versions": [int(version)]}} if version.isdigit() else {"latest": {}}
    )
    config: dict[str, Any] = {
        "name": spec.name,
        "platform": PLATFORM,
        "backend": BACKEND,
        "version_policy": policy,
        "max_batch_size": max_batch_size,
        "input": [
            {
                **_tensor(t),
                "format": "FORMAT_NCHW",
                "is_shape_tensor": False,
                "allow_ragged_batch": False,
                "optional": False,
            }
            for t in spec.inputs
        ],
        "output": [
            {**_tensor(t), "label_filename": "", "is_shape_tensor": False} for t in spec.outputs
        ],
        "instance_group": [{"name": spec.name, "kind": "KIND_CPU", "count": 1}],
        "default_model_filename": "model.onnx",
        "model_transaction_policy": {"decoupled": False},
        "parameters": {},
    }
    if batching is not None:
        size, wait_ms = batching
        config["dynamic_batching"] = {
            "preferred_batch_size": [size],
            "max_queue_delay_microseconds": round(wait_ms * 1000),
        }
    return config


def _tensor(tensor: TensorSpec) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "data_type": f"TYPE_{tensor.datatype}",
        "dims": list(tensor.shape[1:]),
    }


def model_statistics(
    variants: Iterable[LoadedVariant], counts: dict[tuple[str, str], VariantCounts]
) -> dict[str, Any]:
    """``$stats_model_response``: per variant, its request and run counters summed over workers.

    ``success`` and ``fail`` count inference requests addressed to the variant and their
    time from arrival to response; ``queue`` is time waiting for a dynamic batch and
    ``compute_infer`` the ONNX Runtime call, which converts inputs and outputs itself, so
    ``compute_input`` and ``compute_output`` carry the run count with no time of their own.
    No response cache: ``cache_hit`` and ``cache_miss`` stay zero.
    """
    stats = []
    for variant in variants:
        manifest = variant.manifest
        entry = counts.get((manifest.name, manifest.variant), VariantCounts())
        runs = int(entry.runs)
        stats.append(
            {
                "name": model_spec(manifest).name,
                "version": manifest.version,
                "last_inference": int(entry.last_run * 1000),
                "inference_count": int(entry.images),
                "execution_count": runs,
                "inference_stats": {
                    "success": _duration(
                        entry.requests["success"], entry.request_seconds["success"]
                    ),
                    "fail": _duration(entry.requests["failure"], entry.request_seconds["failure"]),
                    "queue": _duration(runs, entry.queue_seconds),
                    "compute_input": _duration(runs, 0.0),
                    "compute_infer": _duration(runs, entry.compute_seconds),
                    "compute_output": _duration(runs, 0.0),
                    "cache_hit": _duration(0, 0.0),
                    "cache_miss": _duration(0, 0.0),
                },
                "batch_stats": [],
                "memory_usage": [],
            }
        )
    return {"model_stats": stats}


def _duration(count: float, seconds: float) -> dict[str, int]:
    return {"count": int(count), "ns": round(seconds * _NS)}


def repository_index(
    served: Iterable[LoadedVariant],
    unavailable: Iterable[Unavailable],
    ready_only: bool,
    load_failures: Mapping[tuple[str, str], str] | None = None,
) -> list[dict[str, str]]:
    """Every entry of the repository with its state; an unavailable one says why, and so does
    a ready one whose latest load failed (what served before still serves)."""
    failures = load_failures or {}
    index = []
    for v in served:
        failed = failures.get((v.manifest.name, v.manifest.variant))
        index.append(
            {
                "name": model_spec(v.manifest).name,
                "version": v.manifest.version,
                "state": READY,
                "reason": "" if failed is None else f"the latest load failed: {failed}",
            }
        )
    if not ready_only:
        for entry in unavailable:
            name = f"{entry.model}-{entry.variant}" if entry.model and entry.variant else entry.path
            index.append(
                {"name": name, "version": "", "state": UNAVAILABLE, "reason": entry.reason}
            )
    # Numbered versions in order: 2 before 10.
    return sorted(index, key=lambda e: (e["name"], len(e["version"]), e["version"]))
