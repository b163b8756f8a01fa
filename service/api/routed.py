"""HTTP for requests routed through an experiment (``?experiment=``, or V2 ``parameters``).

The unit comes in (``X-Experiment-Unit``), the arm goes out (in the body and in
``X-Experiment-Arm``). The exposure is stored before the answer leaves; in shadow mode the
second arm runs on the same input in the background and only its prediction is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from flask import Response, jsonify, request
from numpy.typing import NDArray

from service.api.payload import Payload
from service.api.schemas import ClassifyQuery, EmbedQuery
from service.decode import DecodeOptions
from service.errors import ValidationFailed
from service.experiments import shadow
from service.experiments.attach import experiment_store
from service.experiments.definition import Arm
from service.experiments.routing import Route, record_served, resolve, top_prediction
from service.metrics import record_exposure, record_images, record_variant
from service.naming import split_v2_name
from service.request_id import current as current_request_id
from service.state import plane, settings
from service.statistics import js_divergence
from service.v2 import codec
from service.v2.inference import InferenceResult
from service.v2.request import InferenceRequest

UNIT_HEADER = "X-Experiment-Unit"
ARM_HEADER = "X-Experiment-Arm"

T = TypeVar("T")


@dataclass(frozen=True)
class Protocol(Generic[T]):
    """How to run a variant on the request's input and read what it predicted."""

    run: Callable[[str], T]
    """Runs the input through a variant (by name)."""
    prediction: Callable[[T], tuple[str, float]]
    probabilities: Callable[[T], NDArray[np.float64] | None]


def classify(
    model: str, experiment: str, query: ClassifyQuery, read: Callable[[], Payload]
) -> Response:
    """``classify?experiment=``: the arm's variant answers."""
    the_route = route(model, experiment, request.headers.get(UNIT_HEADER))
    payload = one_image(read())
    current, options = plane(), DecodeOptions(invert=query.invert)
    # In shadow mode every class is ranked (the divergence needs them); trimmed below.
    k = query.top_k
    if the_route.shadow is not None:
        k = len(current.variant(model, the_route.arm.variant).manifest.class_names)
    protocol = Protocol(
        lambda variant: current.classify(model, variant, payload.images, options, k),
        top_prediction,
        _probabilities,
    )
    served = answer(the_route, protocol)
    for prediction in served["predictions"]:
        prediction["top_k"] = prediction["top_k"][: query.top_k]
    return _json(the_route, served)


def embed(model: str, experiment: str, query: EmbedQuery, read: Callable[[], Payload]) -> Response:
    """``embed?experiment=``: the arm's variant answers (outcomes only: there is no class)."""
    the_route = route(model, experiment, request.headers.get(UNIT_HEADER))
    payload = one_image(read())
    current, options = plane(), DecodeOptions(invert=query.invert)
    protocol = Protocol(
        lambda variant: current.embed(model, variant, payload.images, options, query.normalize),
        top_prediction,
        _probabilities,
    )
    return _json(the_route, answer(the_route, protocol))


def infer(name: str, inference: InferenceRequest, chunks: Sequence[memoryview | None]) -> Response:
    """V2 ``infer`` with ``parameters.experiment`` (and ``parameters.unit``)."""
    parameters = inference.parameters or {}
    experiment, unit = parameters.get("experiment"), parameters.get("unit")
    if not isinstance(experiment, str):
        raise ValidationFailed("parameters.experiment must be a string", field="experiment")
    if unit is not None and not isinstance(unit, str):
        raise ValidationFailed("parameters.unit must be a string", field="unit")
    model, _ = split_v2_name(name)
    the_route = route(model, experiment, unit or request.headers.get(UNIT_HEADER), v2=True)
    current = plane()

    def run(variant: str) -> InferenceResult:
        result = current.infer(f"{model}-{variant}", None, inference, chunks)
        if result.images != 1:
            raise ValidationFailed(
                f"an experiment-routed request takes exactly one image (got {result.images}): "
                "feedback names it by the request id",
                field="inputs",
            )
        return result

    labels = current.variant(model, the_route.arm.variant).manifest.class_names
    protocol = Protocol(run, lambda r: _v2_prediction(r, labels), _v2_probabilities)
    result = answer(the_route, protocol)
    result.header.setdefault("parameters", {}).update(
        {f"experiment_{k}": v for k, v in the_route.describe().items()}
    )
    body, header_length = codec.encode_response(result.header, result.outputs)
    response = Response(
        body, mimetype="application/octet-stream" if header_length else "application/json"
    )
    if header_length is not None:
        response.headers[codec.HEADER_LENGTH] = str(header_length)
    response.headers[ARM_HEADER] = the_route.arm.name
    return response


def route(model: str, experiment: str, unit: str | None, *, v2: bool = False) -> Route:
    """Resolve the experiment before anything runs; 422 if v1's ``variant`` was sent as well."""
    if not v2 and "variant" in request.args:
        raise ValidationFailed(
            "query parameter variant: the experiment picks the variant; send experiment "
            "or variant, not both",
            field="variant",
        )
    return resolve(experiment_store(), experiment, model, unit)


def one_image(payload: Payload) -> Payload:
    if len(payload.images) != 1:
        raise ValidationFailed(
            f"images: an experiment-routed request takes exactly one image (got "
            f"{len(payload.images)}): feedback names it by the request id",
            field="images",
        )
    return payload


def answer(the_route: Route, protocol: Protocol[T]) -> T:
    """Run the route's arm, store the exposure, start the shadow arm; return the served result."""
    store = experiment_store()
    request_id = current_request_id()
    start = time.perf_counter()
    served = protocol.run(the_route.arm.variant)
    latency_ms = (time.perf_counter() - start) * 1000.0
    record_served(
        store,
        the_route,
        the_route.exposure(
            the_route.arm, "served", request_id, protocol.prediction(served), latency_ms
        ),
    )
    record_exposure(the_route.experiment.name, the_route.arm.name, "served")
    record_images(1)
    record_variant(the_route.arm.variant)
    other = the_route.shadow
    if other is not None:
        _start_shadow(the_route, other, protocol, request_id, protocol.probabilities(served))
    return served


def _start_shadow(
    the_route: Route,
    arm: Arm,
    protocol: Protocol[T],
    request_id: str,
    served: NDArray[np.float64] | None,
) -> None:
    store = experiment_store()

    def task() -> None:
        start = time.perf_counter()
        result = protocol.run(arm.variant)
        latency_ms = (time.perf_counter() - start) * 1000.0
        mine = protocol.probabilities(result)
        divergence = None
        if served is not None and mine is not None and served.shape == mine.shape:
            divergence = float(js_divergence(served, mine))
        store.record_exposures(
            [
                the_route.exposure(
                    arm, "shadow", request_id, protocol.prediction(result), latency_ms, divergence
                )
            ],
            while_running=False,  # the served request was in the experiment
        )
        record_exposure(the_route.experiment.name, arm.name, "shadow")

    shadow.submit(task, settings().shadow_threads)


def _json(the_route: Route, served: dict[str, Any]) -> Response:
    response = jsonify({**served, "experiment": the_route.describe()})
    response.headers[ARM_HEADER] = the_route.arm.name
    return response


def _probabilities(answer: dict[str, Any]) -> NDArray[np.float64] | None:
    """The probability vector of a one-image classify answer that ranked every class."""
    predictions = answer.get("predictions")
    if not predictions:
        return None
    ranked = predictions[0]["top_k"]
    vector = np.zeros(len(ranked), dtype=np.float64)
    for score in ranked:
        if score["class_index"] >= len(ranked):
            return None  # not every class was ranked
        vector[score["class_index"]] = score["probability"]
    return vector


def _v2_probabilities(result: InferenceResult) -> NDArray[np.float64] | None:
    for output in result.outputs:
        if output.name == "probabilities" and output.datatype == "FP32":
            return np.asarray(output.array, dtype=np.float64).reshape(-1)
    return None


def _v2_prediction(result: InferenceResult, labels: Sequence[str]) -> tuple[str, float]:
    vector = _v2_probabilities(result)
    if vector is None or vector.size != len(labels):
        return ("", 0.0)
    best = int(np.argmax(vector))
    return (labels[best], float(vector[best]))
