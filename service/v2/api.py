"""HTTP routes of the Open Inference Protocol under ``/v2``; they only translate HTTP."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound

from service.api import audit, routed
from service.api.auth import require_admin
from service.errors import BadRequest, LoadFailed
from service.metrics import record_images, variant_counts
from service.naming import split_v2_name
from service.request_id import current as current_request_id
from service.state import plane, settings
from service.v2 import codec, triton
from service.v2.metadata import server_metadata as describe_server
from service.v2.response import inference_response
from service.v2.schemas import RepositoryLoadRequest

bp = Blueprint("v2", __name__, url_prefix="/v2")


@bp.get("")
def server_metadata() -> ResponseReturnValue:
    """Name, version and the protocol extensions this server implements."""
    return jsonify(describe_server())


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    """Answer 200 while the process runs."""
    return jsonify(live=True)


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """Answer 200 once models are loaded, else 503 with the reason."""
    plane().store.require_ready()
    return jsonify(ready=True)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    """The model's versions, platform, input and outputs."""
    return jsonify(plane().v2_metadata(name, version))


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    """Answer 200 when the model can serve, 404 when unknown, 503 when it failed to load."""
    plane().v2_variant(name, version)
    return jsonify(name=name, ready=True)


@bp.get("/models/<name>/config")
@bp.get("/models/<name>/versions/<version>/config")
def model_config(name: str, version: str | None = None) -> ResponseReturnValue:
    """The model's configuration in Triton's form (what perf_analyzer reads first)."""
    loaded = plane().v2_variant(name, version)
    current = settings()
    batching = None
    if current.batch_max_size > 1:
        batching = (current.batch_max_size, current.batch_max_wait_ms)
    return jsonify(triton.model_config(loaded, current.max_batch, batching))


@bp.get("/models/stats")
@bp.get("/models/<name>/stats")
@bp.get("/models/<name>/versions/<version>/stats")
def model_statistics(name: str | None = None, version: str | None = None) -> ResponseReturnValue:
    """Per model: requests by outcome and cumulative queue and compute times, over all workers."""
    variants = plane().v2_variants(name, version)
    return jsonify(triton.model_statistics(variants, variant_counts()))


@bp.post("/repository/index")
def repository_index() -> ResponseReturnValue:
    """Every entry of the model repository with its state, and why one is unavailable."""
    body = request.get_json(silent=True, force=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise BadRequest('repository index request must be a JSON object such as {"ready": true}')
    if unknown := sorted(set(body) - {"ready"}):
        raise BadRequest(f"repository index request: unknown fields {unknown}; it takes 'ready'")
    ready = body.get("ready", False)
    if not isinstance(ready, bool):
        raise BadRequest(f"repository index: 'ready' must be true or false, got {ready!r}")
    current = plane()
    store = current.store
    index = triton.repository_index(
        current.served_versions(), store.unavailable, ready, store.load_failures
    )
    return jsonify(index)


@bp.post("/repository/models/<name>/load")
def repository_load(name: str) -> ResponseReturnValue:
    """Load (or load again) one model from the repository, in every worker (admin token)."""
    return _repository_change("load", name)


@bp.post("/repository/models/<name>/unload")
def repository_unload(name: str) -> ResponseReturnValue:
    """Stop serving one model, in every worker (admin token)."""
    return _repository_change("unload", name)


def _repository_change(action: Literal["load", "unload"], name: str) -> ResponseReturnValue:
    require_admin()
    _repository_request(action)
    current = plane()
    model, variant = split_v2_name(name)
    try:
        if action == "load":
            current.load(name)
        else:
            current.unload(name)
    except LoadFailed as exc:
        audit.record(action, model, variant, "failed", {"reason": exc.message})
        raise
    detail = {}
    if action == "load":
        detail["onnx_sha256"] = current.store.models[model][variant].manifest.onnx_sha256
    audit.record(action, model, variant, "done", detail)
    return jsonify({})


def _repository_request(action: str) -> None:
    """Triton's load and unload bodies: empty, or a JSON object of ``parameters`` (see
    :class:`RepositoryLoadRequest`)."""
    if not request.get_data():
        return
    body = request.get_json(silent=True, force=True)
    try:
        RepositoryLoadRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        raise BadRequest(
            f"{action} request: {where}: {first['msg']} (send no body, or a JSON object whose "
            "'parameters' hold at most 'unload_dependents'; the model is loaded from its "
            "folder as it is)"
        ) from None


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    """Run one inference request, JSON or with binary tensors."""
    current = plane()
    current.v2_variant(name, version)  # an unknown model is named before the body is read
    inference, chunks = codec.read_request(
        request.get_data(cache=False),
        request.headers.get(codec.HEADER_LENGTH),
        request.headers.get("Content-Encoding"),
        settings().max_body_bytes,
    )
    if inference.id is None:  # every answer carries an id (KServe's model requires one)
        inference = inference.model_copy(update={"id": current_request_id()})
    if (inference.parameters or {}).get("experiment") is not None:
        return routed.infer(name, inference, chunks)
    result = current.infer(name, version, inference, chunks)
    record_images(result.images)
    return inference_response(result)


_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


# Without a trailing slash too: PUT /v2 is 405 (the metadata route takes GET), not a
# redirect to /v2/ and a 404 there.
@bp.route("/", methods=_ANY_METHOD, defaults={"rest": ""}, strict_slashes=False)
@bp.route("/<path:rest>", methods=_ANY_METHOD)
def unknown(rest: str) -> ResponseReturnValue:
    """Name the methods a V2 path takes, or say there is no such V2 endpoint."""
    allowed = _allowed_methods()
    if allowed:
        raise MethodNotAllowed(
            valid_methods=allowed,
            description=f"{request.method} is not allowed on {request.path} (use {', '.join(allowed)})",
        )
    raise RouteNotFound(f"no V2 endpoint {request.path}")


@bp.before_app_request
def _options() -> ResponseReturnValue | None:
    """Answer OPTIONS on a V2 path (probes too) with the methods its own route takes.

    Werkzeug's automatic answer lists the methods of every rule that matches the path, and
    the catch-all above matches them all, so it would advertise PUT, PATCH and DELETE.
    """
    if request.method != "OPTIONS" or not (request.path + "/").startswith("/v2/"):
        return None
    allowed = _allowed_methods()
    if not allowed:
        raise RouteNotFound(f"no V2 endpoint {request.path}")
    if "GET" in allowed:
        allowed.append("HEAD")
    response = current_app.response_class(status=200)
    response.headers["Allow"] = ", ".join([*allowed, "OPTIONS"])
    return response


def _allowed_methods() -> list[str]:
    """The methods (of GET and POST) that a V2 route other than the catch-all takes here."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != "v2.unknown":
            allowed.append(method)
    return allowed
