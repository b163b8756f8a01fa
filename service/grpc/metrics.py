"""Prometheus metrics of the gRPC service, beside HTTP's in :mod:`service.metrics`.

Calls are counted by method, model, variant and gRPC status code; inference calls also
count in the per-variant series that the statistics extension reports, whichever protocol
asked, and their images in ``headstart_images`` under the method's path.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Histogram

from service.manifest import VARIANTS
from service.metrics import IMAGES, INFERENCE_SECONDS, INFERENCES, OUTCOMES
from service.naming import split_v2_name

SERVICE = "inference.GRPCInferenceService"

CALLS = Counter(
    "headstart_grpc_requests",
    "gRPC calls answered, by method, model, variant and status code.",
    ["method", "model", "variant", "code"],
)
LATENCY = Histogram(
    "headstart_grpc_request_duration_seconds",
    "Time from a gRPC call reaching the service to its answer.",
    ["method", "model", "variant"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def labels(name: str, served: Mapping[str, Iterable[str]]) -> tuple[str, str]:
    """A V2 name as (model, variant) label values; only names the service knows get through."""
    if not name:
        return "", ""
    model, variant = split_v2_name(name)
    if not model or model not in served:
        return "unknown", "unknown"
    return model, variant if variant in VARIANTS else "unknown"


def observe(
    method: str, model: str, variant: str, code: str, seconds: float, images: int = 0
) -> None:
    """Count one answered call; an inference call also counts for its variant's statistics."""
    _latency(method, model, variant).observe(seconds)
    _calls(method, model, variant, code).inc()
    if method != "ModelInfer" or variant not in VARIANTS:
        return
    outcome = OUTCOMES[code != "OK"]
    INFERENCES.labels(model, variant, outcome).inc()
    INFERENCE_SECONDS.labels(model, variant, outcome).inc(seconds)
    if images:
        IMAGES.labels(f"/{SERVICE}/{method}", model, variant).inc(images)


def declare(served: Mapping[str, Iterable[str]]) -> None:
    """Create the inference series of every served variant at zero."""
    for model, variants in served.items():
        for variant in variants:
            _latency("ModelInfer", model, variant)
            _calls("ModelInfer", model, variant, "OK")
            IMAGES.labels(f"/{SERVICE}/ModelInfer", model, variant)


# Label values are method names and names the service knows, so these caches stay small.
@functools.cache
def _latency(method: str, model: str, variant: str) -> Histogram:
    return LATENCY.labels(method, model, variant)


@functools.cache
def _calls(method: str, model: str, variant: str, code: str) -> Counter:
    return CALLS.labels(method, model, variant, code)
