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
from collections import defaultdict
from dataclasses import dataclass, field

from flask import Flask, Request, Response, g, request
from flask.ctx import _AppCtxGlobals
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from service.manifest import VARIANTS
from service.naming import DEFAULT_VARIANT, split_v2_name
from service.runtime import LoadedVariant
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
# Label values are experiment and arm names an admin created, never a client's free text.
EXPOSURES = Counter(
    "headstart_experiment_exposures",
    "Requests routed through an experiment and stored, by arm and role (served, shadow, failed).",
    ["experiment", "arm", "role"],
)
FEEDBACK = Counter(
    "headstart_experiment_feedback",
    "Feedback items stored, by experiment and arm.",
    ["experiment", "arm"],
)
SHADOW_DROPPED = Counter(
    "headstart_shadow_dropped",
    "Shadow runs not started because the worker's shadow queue was full, by experiment.",
    ["experiment"],
)
REFUSALS = Counter(
    "headstart_front_refusals",
    "Requests the worker's front answered itself, before the app saw them: 408 (body too "
    "slow), 413 (body too large), 503 (overloaded) and 504 (timed out), by status and error "
    "code.",
    ["status", "code"],
)

# Per variant, whichever route asked: what the V2 statistics extension reports.
MODEL = ("model", "variant")
INFERENCES = Counter(
    "headstart_inference_requests",
    "Inference requests addressed to one variant (v1 classify and embed, V2 infer), by outcome.",
    [*MODEL, "outcome"],
)
INFERENCE_SECONDS = Counter(
    "headstart_inference_request_seconds",
    "Time those requests took, from reaching the app to their response, by outcome.",
    [*MODEL, "outcome"],
)
RUNS = Counter("headstart_model_runs", "Model runs (one per request and variant).", MODEL)
RUN_IMAGES = Counter("headstart_model_run_images", "Images run through the model.", MODEL)
QUEUE_SECONDS = Counter(
    "headstart_model_queue_seconds", "Time runs waited for a dynamic batch.", MODEL
)
COMPUTE_SECONDS = Counter(
    "headstart_model_compute_seconds", "Time in the ONNX Runtime call behind each run.", MODEL
)
LAST_RUN = Gauge(
    "headstart_model_last_run_timestamp_seconds",
    "When the model last ran (Unix time).",
    MODEL,
    multiprocess_mode="max",
)
OUTCOMES = ("success", "failure")
_INFERENCE_ENDPOINTS = ("/infer", "/classify", "/embed")


def registry() -> CollectorRegistry:
    """The registry to expose: every worker's samples in multiprocess mode, else this process's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected, path=directory)  # type: ignore[no-untyped-call]
    return collected


def exposition(accept: str | None) -> Response:
    """The ``/metrics`` response: Prometheus' text format, or OpenMetrics when ``accept`` asks."""
    encode, content_type = choose_encoder(accept or "")
    response = Response(encode(registry()))
    # Set verbatim: Flask's mimetype= would append a second charset parameter.
    response.headers["Content-Type"] = content_type
    return response


def observe_run(variant: LoadedVariant, images: int, queued: float, computed: float) -> None:
    """Count one model run (the data plane calls this after every run)."""
    runs, run_images, queue_seconds, compute_seconds, last_run = _run_series(
        variant.manifest.name, variant.manifest.variant
    )
    runs.inc()
    run_images.inc(images)
    if queued:
        queue_seconds.inc(queued)
    compute_seconds.inc(computed)
    last_run.set(time.time())


@functools.cache
def _run_series(model: str, variant: str) -> tuple[Counter, Counter, Counter, Counter, Gauge]:
    """One loaded variant's run series (models are few, and named by the repository)."""
    return (
        RUNS.labels(model, variant),
        RUN_IMAGES.labels(model, variant),
        QUEUE_SECONDS.labels(model, variant),
        COMPUTE_SECONDS.labels(model, variant),
        LAST_RUN.labels(model, variant),
    )


@dataclass
class VariantCounts:
    """One variant's counters, summed over every worker."""

    requests: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0.0))
    request_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0.0))
    runs: float = 0.0
    images: float = 0.0
    queue_seconds: float = 0.0
    compute_seconds: float = 0.0
    last_run: float = 0.0


def variant_counts() -> dict[tuple[str, str], VariantCounts]:
    """Every variant's counters as ``/metrics`` reports them, keyed by (model, variant)."""
    counts: dict[tuple[str, str], VariantCounts] = defaultdict(VariantCounts)
    for family in registry().collect():
        for sample in family.samples:
            labels = sample.labels
            if "model" not in labels or "variant" not in labels or "endpoint" in labels:
                continue
            entry = counts[(labels["model"], labels["variant"])]
            name, value = sample.name, sample.value
            if name == "headstart_inference_requests_total":
                entry.requests[labels["outcome"]] += value
            elif name == "headstart_inference_request_seconds_total":
                entry.request_seconds[labels["outcome"]] += value
            elif name == "headstart_model_runs_total":
                entry.runs += value
            elif name == "headstart_model_run_images_total":
                entry.images += value
            elif name == "headstart_model_queue_seconds_total":
                entry.queue_seconds += value
            elif name == "headstart_model_compute_seconds_total":
                entry.compute_seconds += value
            elif name == "headstart_model_last_run_timestamp_seconds":
                entry.last_run = max(entry.last_run, value)
    return dict(counts)


def record_images(count: int) -> None:
    """Note how many images this request ran; the after-request hook counts them."""
    g.headstart_images = count


def record_exposure(experiment: str, arm: str, role: str) -> None:
    """Count one stored exposure."""
    _exposures(experiment, arm, role).inc()


@functools.lru_cache(maxsize=1024)
def _exposures(experiment: str, arm: str, role: str) -> Counter:
    return EXPOSURES.labels(experiment, arm, role)


def record_feedback(experiment: str, arm: str, count: int) -> None:
    """Count ``count`` stored feedback items for one arm."""
    FEEDBACK.labels(experiment, arm).inc(count)


def record_shadow_dropped(experiment: str) -> None:
    """Count one shadow run dropped because the shadow queue was full."""
    SHADOW_DROPPED.labels(experiment).inc()


def record_variant(variant: str) -> None:
    """Note the variant that answered, when the request did not name it (experiments)."""
    g.headstart_variant = variant


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
        # The proxies' objects, looked up once: each use of a proxy is a lookup.
        values = g._get_current_object()
        current: Request = request._get_current_object()  # type: ignore[attr-defined]
        start = getattr(values, "headstart_t0", None)
        if start is None or current.endpoint == "meta.prometheus":
            return response
        elapsed = time.perf_counter() - start
        status = response.status_code
        labels = _labels(current, values)
        series = _series(labels)
        series.latency.observe(elapsed)
        _requests(labels, status).inc()
        if series.inference is not None:
            count, seconds = series.inference[status >= 400]
            count.inc()
            seconds.inc(elapsed)
        error = getattr(values, "headstart_error", None)
        if error is not None:
            ERRORS.labels(*labels, error).inc()
        images = getattr(values, "headstart_images", None)
        if images:
            series.images.inc(images)
        return response


def declare_series(app: Flask) -> None:
    """Create every known series at zero, so that rates and ``increase()`` count from the start.

    Known means each route with each loaded model and variant it can be asked for; error
    codes and statuses other than 200 still appear with their first request.
    """
    with app.app_context():
        served = plane().store.models
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("meta.prometheus", "static") or rule.endpoint.endswith(".unknown"):
            continue
        for labels in _known_labels(rule.rule, served):
            _series(labels)
            _requests(labels, 200)
    for model, variants in served.items():
        for variant in variants:
            for outcome in OUTCOMES:
                INFERENCES.labels(model, variant, outcome)
                INFERENCE_SECONDS.labels(model, variant, outcome)
            for family in (RUNS, RUN_IMAGES, QUEUE_SECONDS, COMPUTE_SECONDS):
                family.labels(model, variant)


def _known_labels(
    endpoint: str, served: dict[str, dict[str, LoadedVariant]]
) -> list[tuple[str, str, str]]:
    """The label sets ``_labels`` gives this route's requests for the served names."""
    if endpoint.startswith("/v2/models/<name>"):
        return [(endpoint, m, v) for m, vs in served.items() for v in vs]
    if not endpoint.startswith("/v1/models/<model>"):
        return [(endpoint, "", "")]
    if endpoint.endswith("/compare"):
        return [(endpoint, m, "both") for m in served]
    if endpoint.endswith(("/classify", "/embed")):
        return [(endpoint, m, v) for m, vs in served.items() for v in vs]
    return [(endpoint, m, "") for m in served]


@dataclass(frozen=True)
class _Series:
    """The series one route, model and variant's requests count in."""

    latency: Histogram
    images: Counter
    inference: tuple[tuple[Counter, Counter], tuple[Counter, Counter]] | None
    """Requests and seconds by outcome (success, failure), for a variant's inference."""


# Label values are only names the service knows (see _labels), so these caches stay small;
# they save prometheus-client's locked label lookup on every request.
@functools.cache
def _series(labels: tuple[str, str, str]) -> _Series:
    endpoint, model, variant = labels
    inference = None
    if endpoint.endswith(_INFERENCE_ENDPOINTS) and variant in VARIANTS and model != "unknown":
        success, failure = (
            (INFERENCES.labels(model, variant, o), INFERENCE_SECONDS.labels(model, variant, o))
            for o in OUTCOMES
        )
        inference = (success, failure)
    return _Series(LATENCY.labels(*labels), IMAGES.labels(*labels), inference)


@functools.cache
def _requests(labels: tuple[str, str, str], status: int) -> Counter:
    return REQUESTS.labels(*labels, str(status))


def _labels(current: Request, values: _AppCtxGlobals) -> tuple[str, str, str]:
    rule = current.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    args = current.view_args or {}
    # Only names the service knows become label values, so clients cannot grow the series.
    served = plane().store.models
    if endpoint.startswith("/v2/models/") and "name" in args:
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
        # A request routed through an experiment ran the variant its arm named.
        asked = getattr(values, "headstart_variant", None) or current.args.get(
            "variant", DEFAULT_VARIANT
        )
        variant = asked if asked in VARIANTS else "unknown"
    return endpoint, model, variant
