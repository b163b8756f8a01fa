"""Metrics, the OpenAPI document, its docs page and the small web page."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from service import metrics, openapi

bp = Blueprint("meta", __name__)


@bp.get("/metrics")
def prometheus() -> ResponseReturnValue:
    """Prometheus metrics, summed over every gunicorn worker (OpenMetrics on request)."""
    return metrics.exposition(request.headers.get("Accept"))


@bp.get("/openapi.json")
def openapi_document() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of the v1 API."""
    return jsonify(openapi.document())


@bp.get("/docs")
def docs() -> ResponseReturnValue:
    """A self-contained page that renders ``/openapi.json`` (no CDN, works offline)."""
    return current_app.send_static_file("docs.html")


@bp.get("/")
def index() -> ResponseReturnValue:
    """A small page to draw or upload a digit, classify it and compare the variants."""
    return current_app.send_static_file("index.html")
