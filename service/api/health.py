"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from service.state import plane

bp = Blueprint("health", __name__)


@bp.get("/health/live")
def live() -> ResponseReturnValue:
    """Answer 200 while the process runs."""
    return jsonify(status="live")


@bp.get("/health/ready")
def ready() -> ResponseReturnValue:
    """Answer 200 while any model serves ("degraded" when some entry failed), else 503.

    A degraded server stays in rotation: restarting it would not mend a bad file, and
    the variants that did load still answer.
    """
    store = plane().store
    reason = store.not_ready_reason
    if reason is not None:
        return jsonify(status="not_ready", reason=reason), 503
    unavailable = [u.to_json() for u in store.unavailable]
    status = "degraded" if unavailable else "ready"
    return jsonify(status=status, models=sorted(store.models), unavailable=unavailable)
