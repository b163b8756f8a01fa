"""HTTP routes of the Open Inference Protocol under ``/v2``; they only translate HTTP."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.exceptions import NotFound as RouteNotFound

from service import state
from service.errors import NotFound, PayloadTooLarge, ServiceError, UnsupportedMediaType
from service.metrics import record_error, record_images
from service.v2 import codec, dataplane

log = logging.getLogger(__name__)

bp = Blueprint("v2", __name__, url_prefix="/v2")


@bp.get("")
def server_metadata() -> ResponseReturnValue:
    """Name, version and the protocol extensions this server implements."""
    return jsonify(dataplane.server_metadata())


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    """Answer 200 while the process runs."""
    return jsonify(live=True)


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """Answer 200 once models are loaded, else 503 with the reason."""
    state.store().require_ready()
    return jsonify(ready=True)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> ResponseReturnValue:
    """The model's versions, platform, input and outputs."""
    return jsonify(dataplane.model_metadata(dataplane.resolve(state.store(), name, version)))


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> ResponseReturnValue:
    """Answer 200 when the model can serve, 404 when unknown, 503 when it failed to load."""
    dataplane.resolve(state.store(), name, version)
    return jsonify(name=name, ready=True)


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> ResponseReturnValue:
    """Run one inference request, JSON or with binary tensors."""
    loaded = dataplane.resolve(state.store(), name, version)
    settings = state.settings()
    inference, chunks = codec.read_request(
        request.get_data(cache=False),
        request.headers.get(codec.HEADER_LENGTH),
        request.headers.get("Content-Encoding"),
        settings.max_body_bytes,
    )
    result = dataplane.infer(loaded, inference, chunks, settings.max_batch)
    record_images(result.images)
    body, header_length = codec.encode_response(result.header, result.outputs)
    if header_length is None:
        return Response(body, mimetype="application/json")
    response = Response(body, mimetype="application/octet-stream")
    response.headers[codec.HEADER_LENGTH] = str(header_length)
    return response


_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/", methods=_ANY_METHOD, defaults={"rest": ""})
@bp.route("/<path:rest>", methods=_ANY_METHOD)
def unknown(rest: str) -> ResponseReturnValue:
    """Answer a path or method no V2 route takes in the V2 error shape, not the app's."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST"):
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            allowed.append(method)
    if allowed:
        raise MethodNotAllowed(
            valid_methods=allowed,
            description=f"{request.method} is not allowed on {request.path} (use {', '.join(allowed)})",
        )
    raise RouteNotFound(f"no V2 endpoint {request.path}")


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError) -> ResponseReturnValue:
    record_error(exc.code)
    return jsonify(error=exc.message), exc.status_code


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> ResponseReturnValue:
    message = exc.description
    if isinstance(exc, RequestEntityTooLarge):
        message = f"request body is over the limit of {state.settings().max_body_bytes} bytes"
    # The same error codes as the v1 handlers, so the error metric reads alike for both APIs.
    known = {c.status_code: c.code for c in (NotFound, PayloadTooLarge, UnsupportedMediaType)}
    record_error(known.get(exc.code or 500) or (exc.name or "error").lower().replace(" ", "_"))
    response = exc.get_response()
    response.set_data(current_app.json.dumps({"error": message}))
    response.mimetype = "application/json"
    return response


@bp.errorhandler(Exception)
def unexpected(exc: Exception) -> ResponseReturnValue:
    log.exception("unhandled error in a V2 request")
    record_error("internal_error")
    return jsonify(error="internal server error"), 500
