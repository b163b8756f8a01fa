"""Serve a request through an experiment: run the arm, store the exposure, run the shadow.

The protocol layers (v1, V2) hand over how to run a variant on the request's input and how
to read what it predicted; this module does the rest, the same for every protocol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from service.errors import NotFound, ServiceError
from service.experiments import shadow
from service.experiments.definition import Arm
from service.experiments.routing import Route, record_served
from service.experiments.store import ExperimentStore
from service.metrics import record_exposure
from service.statistics import js_divergence
from service.v2.inference import InferenceResult

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol(Generic[T]):
    """How to run a variant on the request's input and read what it predicted."""

    run: Callable[[Arm], T]
    """Runs the input through an arm's variant, at the arm's version."""
    prediction: Callable[[T], tuple[str, float]]
    """The predicted class and its probability (``("", 0.0)`` when there is none)."""
    probabilities: Callable[[T], NDArray[np.float64] | None]
    """The full class distribution, for the shadow arm's divergence; None if not at hand."""


def serve(
    store: ExperimentStore,
    route: Route,
    protocol: Protocol[T],
    request_id: str,
    shadow_threads: int,
) -> T:
    """Run the route's arm and store its exposure (committed before this returns); in shadow
    mode queue the other arm for the background (dropped and counted when the queue is
    full). A stop seen at the write is 409."""
    start = time.perf_counter()
    try:
        served = protocol.run(route.arm)
    except Exception as exc:
        if is_arm_failure(exc):
            _record_failure(store, route, request_id, (time.perf_counter() - start) * 1000.0)
        raise
    latency_ms = (time.perf_counter() - start) * 1000.0
    exposure = route.exposure(
        route.arm, "served", request_id, protocol.prediction(served), latency_ms
    )
    record_served(store, route, exposure)
    record_exposure(route.experiment.name, route.arm.name, "served")
    other = route.shadow
    if other is not None:
        distribution = protocol.probabilities(served)
        shadow.submit(
            lambda: _shadow(store, route, other, protocol, request_id, distribution),
            shadow_threads,
            route.experiment.name,
        )
    return served


def is_arm_failure(exc: Exception) -> bool:
    """Whether the arm, not the request, is to blame: anything but a client's mistake (a bad
    image, a bad parameter). A model the arm names that is not served counts: the client
    named the experiment, not the model."""
    if not isinstance(exc, ServiceError):
        return True
    return exc.status_code >= 500 or isinstance(exc, NotFound)


def _record_failure(store: ExperimentStore, route: Route, request_id: str, ms: float) -> None:
    """Store a failed request (for the ``errors`` guardrail); never hides the failure."""
    exposure = route.exposure(route.arm, "failed", request_id, ("", 0.0), ms)
    try:
        store.record_exposures([exposure], while_running=False)
    except Exception:  # the request's own error is what the client must see
        log.exception("experiment %s: cannot record a failed request", route.experiment.name)
    record_exposure(route.experiment.name, route.arm.name, "failed")


def _shadow(
    store: ExperimentStore,
    route: Route,
    arm: Arm,
    protocol: Protocol[T],
    request_id: str,
    served: NDArray[np.float64] | None,
) -> None:
    start = time.perf_counter()
    result = protocol.run(arm)
    latency_ms = (time.perf_counter() - start) * 1000.0
    mine = protocol.probabilities(result)
    divergence = None
    if served is not None and mine is not None and served.shape == mine.shape:
        divergence = float(js_divergence(served, mine))
    exposure = route.exposure(
        arm, "shadow", request_id, protocol.prediction(result), latency_ms, divergence
    )
    # The served request was in the experiment, so its shadow is recorded even after a stop.
    store.record_exposures([exposure], while_running=False)
    record_exposure(route.experiment.name, arm.name, "shadow")


def answer_probabilities(answer: dict[str, Any]) -> NDArray[np.float64] | None:
    """The class distribution of a one-image v1 classify answer that ranked every class."""
    predictions = answer.get("predictions")
    if not predictions or predictions[0].get("blank"):
        return None  # a blank image has no class distribution
    ranked = predictions[0]["top_k"]
    vector = np.zeros(len(ranked), dtype=np.float64)
    for score in ranked:
        if score["class_index"] >= len(ranked):
            return None  # not every class was ranked
        vector[score["class_index"]] = score["probability"]
    return vector


def tensor_probabilities(result: InferenceResult) -> NDArray[np.float64] | None:
    """The ``probabilities`` output of a one-image V2 result, if it was asked for as numbers."""
    for output in result.outputs:
        if output.name == "probabilities" and output.datatype == "FP32":
            return np.asarray(output.array, dtype=np.float64).reshape(-1)
    return None


def tensor_prediction(result: InferenceResult, labels: Sequence[str]) -> tuple[str, float]:
    """The predicted class of a one-image V2 result, from its ``probabilities`` output."""
    vector = tensor_probabilities(result)
    if vector is None or vector.size != len(labels):
        return ("", 0.0)
    best = int(np.argmax(vector))
    return (labels[best], float(vector[best]))
