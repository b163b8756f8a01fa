"""``X-Request-ID`` on every response: the client's, if it sent a sane one, else a new one.

gunicorn's access log line prints the response header, so the id a client
sees is the id in the log.
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, Response, g, request

HEADER = "X-Request-ID"
# Printable, no spaces or quotes: the id goes into log lines verbatim.
_SANE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def request_id(client_value: str | None) -> str:
    """The id to use for a request whose client sent ``client_value``."""
    if client_value is not None and _SANE.fullmatch(client_value):
        return client_value
    return secrets.token_hex(16)


def current() -> str:
    """This request's id, fixed at first use: what is stored for it is what the client sees."""
    value: str | None = g.get("headstart_request_id")
    if value is None:
        value = g.headstart_request_id = request_id(request.headers.get(HEADER))
    return value


def init_app(app: Flask) -> None:
    """Set the request id header on every response, errors included."""

    @app.after_request
    def _set_request_id(response: Response) -> Response:
        response.headers[HEADER] = current()
        return response
