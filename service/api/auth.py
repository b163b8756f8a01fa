"""Bearer tokens for the routes that change state: admin (experiments, loading models) and
feedback."""

from __future__ import annotations

import hmac

from flask import request
from pydantic import SecretStr

from service import state
from service.errors import Forbidden, Unauthorized


def require_admin() -> None:
    """Let the request through only with the admin token; 403 while none is configured."""
    token = state.settings().admin_token
    if token is None:
        raise Forbidden(
            "the admin routes (experiments, loading and unloading models) are off: start the "
            "service with "
            "HEADSTART_ADMIN_TOKEN set to a secret and send 'Authorization: Bearer <token>'"
        )
    _check([token])


def require_feedback() -> None:
    """Let the request through with the feedback or the admin token; 403 while neither is set."""
    settings = state.settings()
    tokens = [t for t in (settings.feedback_token, settings.admin_token) if t is not None]
    if not tokens:
        raise Forbidden(
            "feedback is off: start the service with HEADSTART_FEEDBACK_TOKEN (or "
            "HEADSTART_ADMIN_TOKEN) set to a secret and send 'Authorization: Bearer <token>'"
        )
    _check(tokens)


def _check(tokens: list[SecretStr]) -> None:
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        raise Unauthorized("send the token as 'Authorization: Bearer <token>'")
    given = sent.strip().encode()
    # Compare with every token, always: the time taken says nothing about which one matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.get_secret_value().encode())
    if not matched:
        raise Unauthorized("the bearer token is not valid for this route")
