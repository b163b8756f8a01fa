"""gunicorn's access log line for every request, written without gunicorn's generic formatter.

gunicorn builds a dict of every request header, response header and WSGI
environ entry for each line, whatever the format uses; for a request that
takes a few hundred microseconds that is a visible share. :class:`AccessLogger`
writes the service's own format directly and falls back to gunicorn's way for
any other ``access_log_format`` an operator sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from gunicorn.glogging import Logger

FORMAT = (
    '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s worker=%(p)s agent="%(a)s"'
)
"""The access line: client, request line, status, bytes sent, milliseconds, request id, worker
and user agent. The request id is the response's ``X-Request-ID`` header, set by the app."""


class AccessLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's logger, with :data:`FORMAT` lines formatted in one step."""

    def access(
        self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta
    ) -> None:
        if self.cfg.access_log_format != FORMAT:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info(access_line(resp, environ, request_time))
        except Exception:  # noqa: BLE001 -- as gunicorn does: a log line never fails a request
            super().access(resp, req, environ, request_time)


def access_line(resp: Any, environ: Mapping[str, Any], request_time: timedelta) -> str:
    """``FORMAT`` filled in as gunicorn would fill it: quotes escaped, ``-`` for what is missing."""
    status = resp.status
    if isinstance(status, str):
        status = status.split(None, 1)[0]
    sent = getattr(resp, "sent", None)
    request = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
    millis = request_time.seconds * 1000 + int(request_time.microseconds / 1000)
    return (
        f"{_quoted(environ.get('REMOTE_ADDR', '-'))}"
        f' "{_quoted(request)}" {status} {"-" if sent is None else sent} {millis}ms'
        f" request_id={_quoted(_header(resp.headers, 'x-request-id'))}"
        f' worker=<{os.getpid()}> agent="{_quoted(environ.get("HTTP_USER_AGENT", "-"))}"'
    )


def _header(headers: Iterable[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return "-"


def _quoted(value: Any) -> Any:
    return value.replace('"', '\\"') if isinstance(value, str) else value
