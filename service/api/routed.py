"""HTTP for requests routed through an experiment (``?experiment=``, or V2 ``parameters``).

The unit comes in (``X-Experiment-Unit``), the arm goes out (in the body and in
``X-Experiment-Arm``); :mod:`service.experiments.serving` runs the arm through the data
plane and stores the exposure before the answer leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Response, jsonify, request

from service.api.payload import Payload
from service.api.schemas import ClassifyQuery, EmbedQuery
from service.decode import DecodeOptions
from service.errors import ValidationFailed
from service.experiments.attach import experiment_store
from service.experiments.definition import Arm
from service.experiments.routing import Route, resolve, top_prediction
from service.experiments.serving import (
    Protocol,
    answer_probabilities,
    serve,
    tensor_prediction,
    tensor_probabilities,
)
from service.metrics import record_images, record_variant
from service.naming import split_v2_name
from service.request_id import current as current_request_id
from service.state import plane, settings
from service.v2.inference import InferenceResult
from service.v2.request import InferenceRequest
from service.v2.response import inference_response

UNIT_HEADER = "X-Experiment-Unit"
ARM_HEADER = "X-Experiment-Arm"

T = TypeVar("T")


def classify(
    model: str,
    experiment: str,
    query: ClassifyQuery,
    options: DecodeOptions,
    read: Callable[[], Payload],
) -> Response:
    """``classify?experiment=``: the arm's variant answers."""
    the_route = route(model, experiment, request.headers.get(UNIT_HEADER))
    payload = one_image(read())
    current = plane()
    # In shadow mode every class is ranked (the divergence needs them); trimmed below.
    k = query.top_k
    if the_route.shadow is not None:
        arm = the_route.arm
        k = len(current.variant(model, arm.variant, arm.version).manifest.class_names)
    protocol = Protocol(
        lambda arm: current.classify(
            model, arm.variant, payload.images, options, k, query.include_input, arm.version
        ),
        top_prediction,
        answer_probabilities,
    )
    served = answer(the_route, protocol)
    for prediction in served["predictions"]:
        prediction["top_k"] = prediction["top_k"][: query.top_k]
    return _json(the_route, served)


def embed(
    model: str,
    experiment: str,
    query: EmbedQuery,
    options: DecodeOptions,
    read: Callable[[], Payload],
) -> Response:
    """``embed?experiment=``: the arm's variant answers (outcomes only: there is no class)."""
    the_route = route(model, experiment, request.headers.get(UNIT_HEADER))
    payload = one_image(read())
    current = plane()
    protocol = Protocol(
        lambda arm: current.embed(
            model, arm.variant, payload.images, options, query.normalize, arm.version
        ),
        top_prediction,
        answer_probabilities,
    )
    return _json(the_route, answer(the_route, protocol))


def infer(name: str, inference: InferenceRequest, chunks: Sequence[memoryview | None]) -> Response:
    """V2 ``infer`` with ``parameters.experiment`` (and ``parameters.unit``)."""
    result, the_route = infer_routed(
        name, inference, chunks, request.headers.get(UNIT_HEADER), current_request_id()
    )
    record_images(1)
    record_variant(the_route.arm.variant)
    response = inference_response(result)
    response.headers[ARM_HEADER] = the_route.arm.name
    return response


def infer_routed(
    name: str,
    inference: InferenceRequest,
    chunks: Sequence[memoryview | None],
    unit_header: str | None,
    request_id: str,
) -> tuple[InferenceResult, Route]:
    """Serve a V2 request through its experiment, in any protocol: the arm's result, with the
    experiment in its ``parameters``, and the route. Needs the app's context, not a request."""
    parameters = inference.parameters or {}
    experiment, unit = parameters.get("experiment"), parameters.get("unit")
    if not isinstance(experiment, str):
        raise ValidationFailed("parameters.experiment must be a string", field="experiment")
    if unit is not None and not isinstance(unit, str):
        raise ValidationFailed("parameters.unit must be a string", field="unit")
    model, _ = split_v2_name(name)
    store = experiment_store()
    # An empty parameters.unit is refused as v1's empty header is, not routed at random.
    the_route = resolve(store, experiment, model, unit if unit is not None else unit_header)
    current = plane()

    def run(arm: Arm) -> InferenceResult:
        result = current.infer(f"{model}-{arm.variant}", arm.version, inference, chunks)
        if result.images != 1:
            raise ValidationFailed(
                f"an experiment-routed request takes exactly one image (got {result.images}): "
                "feedback names it by the request id",
                field="inputs",
            )
        return result

    arm = the_route.arm

    def prediction(result: InferenceResult) -> tuple[str, float]:
        # Looked up once the arm has answered: an arm whose model is gone fails in ``run``,
        # where the failure is recorded against it.
        labels = current.variant(model, arm.variant, arm.version).manifest.class_names
        return tensor_prediction(result, labels)

    protocol = Protocol(run, prediction, tensor_probabilities)
    result = serve(store, the_route, protocol, request_id, settings().shadow_threads)
    result.header.setdefault("parameters", {}).update(
        {f"experiment_{k}": v for k, v in the_route.describe().items()}
    )
    return result, the_route


def route(model: str, experiment: str, unit: str | None, *, v2: bool = False) -> Route:
    """Resolve the experiment before anything runs; 422 if v1's ``variant`` or ``version``
    was sent as well."""
    for chosen in ("variant", "version"):
        if not v2 and chosen in request.args:
            raise ValidationFailed(
                f"query parameter {chosen}: the experiment picks the variant and its version; "
                f"send experiment or {chosen}, not both",
                field=chosen,
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
    """Serve through the experiment, then count the image under the variant that ran."""
    served = serve(
        experiment_store(), the_route, protocol, current_request_id(), settings().shadow_threads
    )
    record_images(1)
    record_variant(the_route.arm.variant)
    return served


def _json(the_route: Route, served: dict[str, Any]) -> Response:
    response = jsonify({**served, "experiment": the_route.describe()})
    response.headers[ARM_HEADER] = the_route.arm.name
    return response
