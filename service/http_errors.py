"""The one mapping from errors to HTTP responses, for every route.

:class:`service.errors.ServiceError` carries its own status and code; Werkzeug's
errors (unknown route, wrong method, body over ``MAX_CONTENT_LENGTH``) get the same
codes; anything else is a 500 that never shows its traceback. Routes under ``/v2``
answer in the Open Inference Protocol's shape ``{"error": "<message>"}``, every
other route in v1's ``{"error": {"code", "message", ...details}}``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service.errors import (
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
)
from service.manifest import VARIANTS
from service.metrics import record_error
from service.naming import DEFAULT_VARIANT, split_v2_name
from service.state import settings

log = logging.getLogger(__name__)

# Werkzeug's errors under the same codes as the service's own.
_CODES = {c.status_code: c.code for c in (NotFound, PayloadTooLarge, UnsupportedMediaType)}
_V2_PREFIX = "/v2"
# KServe's V1 protocol: /v1/models/<name>:predict and :explain.
_KSERVE_V1 = re.compile(r"/v1/models/([^/:]+):(predict|explain)")


def register(app: Flask) -> None:
    """Answer every error of ``app`` as JSON in the shape of the route's protocol."""
    app.register_error_handler(ServiceError, _service_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _service_error(exc: ServiceError) -> Response:
    response = _render(exc.status_code, exc.code, exc.message, exc.details)
    if isinstance(exc, Unauthorized):  # every token-gated route, whichever protocol
        response.headers["WWW-Authenticate"] = 'Bearer realm="headstart"'
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    kserve_v1 = _KSERVE_V1.fullmatch(request.path)
    if status == 405 and kserve_v1:
        return _render(404, NotFound.code, _kserve_v1_pointer(kserve_v1[1], kserve_v1[2]))
    code = _CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name
    if isinstance(exc, RequestEntityTooLarge):
        message = f"request body is over the limit of {settings().max_body_bytes} bytes"
    response = _render(status, code, message)
    # Allow on 405, and whatever else Werkzeug sets for its error, except its HTML type.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _kserve_v1_pointer(name: str, verb: str) -> str:
    """Where a KServe V1 request (``POST /v1/models/<name>:predict``) goes instead."""
    model, variant = split_v2_name(name)
    target = name if model and variant in VARIANTS else f"{name}-{DEFAULT_VARIANT}"
    return (
        f"/v1/models/{name}:{verb} is KServe's V1 protocol, which this service does not speak; "
        f"send the Open Inference Protocol (V2) instead: POST /v2/models/{target}/infer "
        "(over gRPC: ModelInfer)"
    )


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.path)
    return _render(500, "internal_error", "internal server error")


def _render(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    record_error(code)
    if request.path == _V2_PREFIX or request.path.startswith(_V2_PREFIX + "/"):
        body: dict[str, Any] = {"error": message}
    else:
        body = {"error": {"code": code, "message": message, **(details or {})}}
    return current_app.response_class(
        current_app.json.dumps(body), status=status, mimetype="application/json"
    )
