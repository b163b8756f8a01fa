"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from service.state import store

bp = Blueprint("health", __name__)


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    """Answer 200 while the process runs."""
    return jsonify(status="live")


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """Answer 200 once models are loaded, else 503 with the reason."""
    current = store()
    reason = current.not_ready_reason
    if reason is not None:
        return jsonify(status="not_ready", reason=reason), 503
    return jsonify(status="ready", models=sorted(current.models))
