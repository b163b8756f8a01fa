"""The Flask app factory: ``gunicorn 'service:create_app()'``."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from service import batching, state
from service.errors import ServiceError
from service.json_provider import OrjsonProvider
from service.metrics import record_error
from service.runtime import ModelStore
from service.settings import Settings

log = logging.getLogger(__name__)

# Werkzeug's errors under the same codes as the service's own (see service.errors).
_HTTP_CODES = {404: "not_found", 413: "payload_too_large", 415: "unsupported_media_type"}


def create_app(settings: Settings | None = None) -> Flask:
    """Create the app and load every model in the repository."""
    settings = settings or Settings()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)
    model_store = ModelStore.load(settings.model_repository, intra_op_threads=settings.ort_threads)
    batching.enable(model_store, settings.batch_max_size, settings.batch_max_wait_ms)
    state.attach(app, settings, model_store)

    from service import metrics, request_id
    from service.api import health, meta, v1
    from service.v2 import api as v2_api

    request_id.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(v1.bp)
    app.register_blueprint(meta.bp)
    app.register_blueprint(v2_api.bp)
    _register_error_handlers(app)
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> ResponseReturnValue:
        record_error(exc.code)
        body = {"error": {"code": exc.code, "message": exc.message, **exc.details}}
        return jsonify(body), exc.status_code

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> ResponseReturnValue:
        # Werkzeug's own errors (404 route, 405, 413 from MAX_CONTENT_LENGTH) as JSON, not HTML.
        status = exc.code or 500
        code = _HTTP_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
        record_error(code)
        message = exc.description
        if status == 413:
            message = f"request body over the limit of {state.settings().max_body_bytes} bytes"
        return jsonify({"error": {"code": code, "message": message}}), status

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("unhandled error")
        record_error("internal_error")
        body = {"error": {"code": "internal_error", "message": "internal server error"}}
        return jsonify(body), 500
