"""Prometheus metrics per endpoint, model and variant, summed across gunicorn workers.

Under gunicorn, ``service.gunicorn_conf`` sets ``PROMETHEUS_MULTIPROC_DIR``
before prometheus-client is imported, so each worker writes its samples to its
own file there and ``/metrics`` adds them up; in a single process (tests using
Flask's client) the ordinary in-memory registry is used.
"""

from __future__ import annotations

import functools
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from service.manifest import VARIANTS
from service.naming import DEFAULT_VARIANT, split_v2_name
from service.state import plane

LABELS = ("endpoint", "model", "variant")

REQUESTS = Counter("headstart_requests", "HTTP requests answered.", [*LABELS, "status"])
ERRORS = Counter(
    "headstart_request_errors", "Requests answered with an error, by error code.", [*LABELS, "code"]
)
LATENCY = Histogram(
    "headstart_request_duration_seconds",
    "Time from the request reaching the app to its response.",
    LABELS,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IMAGES = Counter("headstart_images", "Images decoded and run through a model.", LABELS)


def registry() -> CollectorRegistry:
    """The registry to expose: every worker's samples in multiprocess mode, else this process's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected, path=directory)  # type: ignore[no-untyped-call]
    return collected


def exposition() -> Response:
    """The ``/metrics`` response in Prometheus' text format."""
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def record_images(count: int) -> None:
    """Note how many images this request ran; the after-request hook counts them."""
    g.headstart_images = count


def record_error(code: str) -> None:
    """Note the error code of this request's error response."""
    g.headstart_error = code


def init_app(app: Flask) -> None:
    """Time and count every request."""

    @app.before_request
    def _start() -> None:
        g.headstart_t0 = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        start = g.get("headstart_t0")
        if start is None or request.endpoint == "meta.prometheus":
            return response
        labels = _labels()
        latency, images = _series(labels)
        latency.observe(time.perf_counter() - start)
        _requests(labels, response.status_code).inc()
        error = g.get("headstart_error")
        if error is not None:
            ERRORS.labels(*labels, error).inc()
        count = g.get("headstart_images")
        if count:
            images.inc(count)
        return response


# Label values are only names the service knows (see _labels), so these caches stay small;
# they save prometheus-client's locked label lookup on every request.
@functools.cache
def _series(labels: tuple[str, str, str]) -> tuple[Histogram, Counter]:
    return LATENCY.labels(*labels), IMAGES.labels(*labels)


@functools.cache
def _requests(labels: tuple[str, str, str], status: int) -> Counter:
    return REQUESTS.labels(*labels, str(status))


def _labels() -> tuple[str, str, str]:
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    args = request.view_args or {}
    # Only names the service knows become label values, so clients cannot grow the series.
    served = plane().store.models
    if endpoint.startswith("/v2/models/"):
        model, variant = split_v2_name(str(args.get("name", "")))
        if not model:
            return endpoint, "unknown", "unknown"
        known_model = model if model in served else "unknown"
        return endpoint, known_model, variant if variant in VARIANTS else "unknown"
    model = args.get("model", "")
    if model and model not in served:
        model = "unknown"
    variant = ""
    if model and endpoint.endswith("/compare"):
        variant = "both"
    elif model and endpoint.endswith(("/classify", "/embed")):
        asked = request.args.get("variant", DEFAULT_VARIANT)
        variant = asked if asked in VARIANTS else "unknown"
    return endpoint, model, variant
