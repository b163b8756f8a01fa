"""The WSGI front every request passes in a worker: buffer, bound, shed, time out.

The connection's greenlet reads the whole body first (a slow client costs a greenlet,
never a thread), then the app runs: a small request that waits on nothing right there on
the event loop, any other in a bounded pool of real threads, where decoding and ONNX Runtime
release the GIL and never stall the event loop. Around that:

- a body over ``max_body_bytes`` is 413, whatever its transfer encoding (chunked bodies
  have no length to check up front, so they are counted as they are read), and the
  connection closes after the answer: the rest of the body is never read;
- a body that stalls for ``body_timeout`` seconds, or arrives slower on average than
  ``min_body_rate`` once its first ``body_timeout`` seconds are over, is 408 and its
  connection closed, so a client cannot hold a buffer by stopping halfway;
- ``Expect: 100-continue`` is answered only when the body is going to be read;
- a body that would take the body bytes the worker holds (bodies being read, and those of
  requests not done yet) over ``max_buffered_bytes`` is 503 with ``Retry-After`` and its
  connection closed, so many large bodies at once cannot grow a worker without bound;
- when every thread is busy and ``max_queue`` requests already wait, a request is 503
  with ``Retry-After`` at once, rather than waiting without bound;
- a request not answered within ``request_timeout`` seconds of its body's arrival, waiting
  for a thread included, is 504 and its connection is freed; its thread stops at the next
  step that checks the deadline (:mod:`service.deadline`: each image, each model run), and a
  request whose deadline passed while it waited for a thread is never run;
- probes (``/health/…``) and ``/metrics`` run on the event loop, outside the queue, so
  they answer while the pool is saturated;
- a small request the app's ``inline`` rule allows (one that waits on nothing: see
  :mod:`service.inline`) runs on the event loop too, while its route's recent requests took
  at most ``inline_budget`` seconds of CPU on average: for a digit, the hand-off to a thread and
  back costs more than its whole run, and the worker's threads would queue for the GIL
  behind each other anyway. Any other request, and every request of a route that turned
  costly, goes to the pool, whose runs keep measuring the route so it can come back;
- a kept-alive connection is closed after ``keepalive_requests`` responses: its client
  reconnects, and the kernel hands the new connection to whichever worker accepts first,
  so load spreads over the workers (a replacement worker included) instead of staying
  wherever the connections happened to land.

Errors are JSON in the shape of the route: ``{"error": "…"}`` under ``/v2/``, else
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import io
import json
import math
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.threadpool import ThreadPool

from service import deadline as deadline_scope
from service import request_id
from service.metrics import REFUSALS

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_INLINE_PREFIXES = ("/health/", "/v2/health/", "/metrics")
"""Cheap routes answered on the event loop: probes must answer under load."""

_READ_SIZE = 64 * 1024
_INLINE_BODY = 64 * 1024
"""Largest body run on the event loop: photos and batches cost more than the hand-off."""
_INLINE_WEIGHT = 0.2
"""Weight of the latest request in its route's cost (a moving average): one request that
costs five times the budget moves its route to the threads, while a rare pause (a garbage
collection) does not; about ten cheap ones bring it back."""
_ROUTES_KEPT = 256
"""Routes whose cost is remembered; past it they are all forgotten (clients choose paths)."""
_SPAWNED = "headstart.spawned"
"""Set in the environ once a pool thread has the request (and will release its body)."""


@dataclass(frozen=True)
class Limits:
    """What the front enforces; see :class:`service.settings.Settings` for each."""

    threads: int
    max_queue: int
    request_timeout: float
    max_body_bytes: int
    keepalive_requests: int
    inline_budget: float = 0.0
    body_timeout: float = 10.0
    min_body_rate: float = 16 * 1024.0
    max_buffered_bytes: int = 64 * 1024 * 1024


class ChunkTooLarge(Exception):
    """A chunk of a chunked body declares more bytes than a whole body may have."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass
class _Reply:
    """A response produced by the app, in a pool thread or on the event loop."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    cpu: float = 0.0
    """Seconds of CPU the running thread spent on the request."""


InlineRule = Callable[[Environ, bytes], bool]
"""Whether a request (its environ and whole body) may run on the event loop at all."""


class Front:
    """Wrap a WSGI app; call it from greenlets (one per connection) of a gevent worker."""

    def __init__(self, app: WsgiApp, limits: Limits, inline: InlineRule | None = None) -> None:
        self.app = app
        self.limits = limits
        self.inline = inline if limits.inline_budget > 0 else None
        self.costs: dict[str, float] = {}
        """Per route (path) that may run inline, the CPU seconds its requests take lately."""
        self.pool = ThreadPool(limits.threads)
        self.in_flight = 0  # touched by greenlets of one event loop only: no lock needed
        self.buffered = 0
        """Body bytes held now: bodies being read, and those of requests not yet done."""
        self.served: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(_INLINE_PREFIXES):
            return self.app(environ, start_response)
        refusal, held = self._buffer_body(environ)
        if refusal is not None:
            # The rest of the body is never read: the connection closes after the answer.
            _close_after(start_response)
            return _error(start_response, environ, *refusal)
        route = self._inline_route(environ, held)
        try:
            if route is not None and self.costs.get(route, math.inf) <= self.limits.inline_budget:
                reply = self._run_inline(environ)
            else:
                reply = self._run(environ, held)
        except _NotRun as not_run:
            return _error(start_response, environ, *not_run.args)
        finally:
            if not environ.get(_SPAWNED):
                self.buffered -= held  # else its thread's end releases them
        if route is not None:
            self._note_cost(route, reply.cpu)
        start_response(reply.status, reply.headers)
        self._count(environ, start_response)
        return [reply.body]

    def _inline_route(self, environ: Environ, held: int) -> str | None:
        """The route whose cost decides where this request runs; None: always the pool."""
        if self.inline is None or held > _INLINE_BODY:
            return None
        body = environ["wsgi.input"].getvalue() if held else b""
        if not self.inline(environ, body):
            return None
        route: str = environ.get("PATH_INFO", "")
        return route

    def _note_cost(self, route: str, cpu: float) -> None:
        """Fold one request's CPU time into its route's cost (see :data:`_INLINE_WEIGHT`)."""
        cost = self.costs.get(route)
        if cost is None:
            if len(self.costs) >= _ROUTES_KEPT:
                self.costs.clear()
            self.costs[route] = cpu
        else:
            self.costs[route] = cost + (cpu - cost) * _INLINE_WEIGHT

    def _run_inline(self, environ: Environ) -> _Reply:
        """Run the request on the event loop, once every connection before it had its turn."""
        deadline = time.monotonic() + self.limits.request_timeout
        # Every other connection with a request waiting, and every new one, goes first: a
        # quick client's next request is read without a wait, and its connection would
        # otherwise keep the loop to itself.
        gevent.idle()
        return _measured(self.app, environ, deadline)

    def _run(self, environ: Environ, held: int) -> _Reply:
        """Run the request in a pool thread, which releases the body's ``held`` bytes when it
        is done; :class:`_NotRun` when it was not answered, for want of a thread or of time."""
        if self.in_flight >= self.limits.threads + self.limits.max_queue:
            raise _NotRun(*_OVERLOADED)
        # Counted until its thread is done, not until its client is answered: a request
        # answered 504 still holds its thread, and the queue must not forget it.
        self.in_flight += 1
        deadline = time.monotonic() + self.limits.request_timeout
        # One timer over the wait for a thread and the run: the pool's spawn itself waits
        # while every thread is busy, and a deadline started after it would not hold.
        timer = gevent.Timeout(self.limits.request_timeout)
        timer.start()
        try:
            task = self.pool.spawn(_run, self.app, environ, deadline)
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            self.in_flight -= 1  # it never reached a thread
            timer.close()
            raise _NotRun(504, "timeout", self._too_late()) from None
        environ[_SPAWNED] = True
        task.rawlink(lambda _: self._finished(held))
        try:
            reply: _Reply = task.get()
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            raise _NotRun(504, "timeout", self._too_late()) from None
        finally:
            timer.close()
        return reply

    def _too_late(self) -> str:
        return f"the request took over {self.limits.request_timeout:g} s and was abandoned"

    def _finished(self, held: int) -> None:
        """Called on the event loop when the pool thread is done with a request."""
        self.in_flight -= 1
        self.buffered -= held

    def _count(self, environ: Environ, start_response: StartResponse) -> None:
        """Close the connection once it has carried ``keepalive_requests`` responses."""
        connection = environ.get("gunicorn.socket")
        if connection is None:
            return
        served = self.served.get(connection, 0) + 1
        self.served[connection] = served
        if served >= self.limits.keepalive_requests:
            _close_after(start_response)

    def _buffer_body(self, environ: Environ) -> tuple[_Refusal | None, int]:
        """Read the body into memory: a reason to refuse the request (or ``None``), and the
        bytes now held for it in :attr:`buffered` (none when it is refused).

        A body declared or found over the limit is refused without reading the rest, and so
        is one that stalls for ``body_timeout`` seconds or arrives slower, on average, than
        ``min_body_rate`` bytes a second once its first ``body_timeout`` seconds are over,
        and one that would take the bytes the worker holds over ``max_buffered_bytes``.
        """
        limit = self.limits.max_body_bytes
        length = environ.get("CONTENT_LENGTH") or None
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if length is None and not chunked:
            return None, 0
        declared = None
        if length is not None and not chunked:
            try:
                declared = int(length)
            except ValueError:
                return (400, "bad_request", f"Content-Length {length!r} is not a number"), 0
            if declared > limit:
                return (413, "payload_too_large", _too_large(limit)), 0
        _send_continue(environ)
        sink = io.BytesIO()
        try:
            refusal = self._read_into(environ["wsgi.input"], sink)
        except BaseException:
            self.buffered -= sink.tell()
            raise
        size = sink.tell()
        if refusal is None and declared is not None and size != declared:
            # gunicorn ends a body early when its client hangs up: nothing is left to answer.
            refusal = (400, "bad_request", f"the body ended after {size} of {declared} bytes")
        if refusal is not None:
            self.buffered -= size
            return refusal, 0
        sink.seek(0)
        environ["wsgi.input"] = sink
        environ["CONTENT_LENGTH"] = str(size)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return None, size

    def _read_into(self, stream: Any, sink: io.BytesIO) -> _Refusal | None:
        """Copy the body into ``sink``, counting it in :attr:`buffered` as it arrives."""
        limit = self.limits.max_body_bytes
        patience, rate = self.limits.body_timeout, self.limits.min_body_rate
        started = last = time.monotonic()
        while True:
            size = sink.tell()
            # Wait for the next bytes until the body stalls too long or falls behind the rate.
            wait = min(last + patience, started + patience + size / rate) - time.monotonic()
            try:
                with gevent.Timeout(max(wait, 0.0)):
                    chunk = stream.read(min(_READ_SIZE, limit + 1 - size))
            except gevent.Timeout:
                return 408, "body_timeout", _too_slow(size, patience, rate)
            except ChunkTooLarge as chunk_over:
                return 413, "payload_too_large", _too_large(limit, chunk_over.size)
            if not chunk:
                return None
            if self.buffered + len(chunk) > self.limits.max_buffered_bytes:
                return _OVERLOADED
            last = time.monotonic()
            sink.write(chunk)
            self.buffered += len(chunk)
            if size + len(chunk) > limit:
                return 413, "payload_too_large", _too_large(limit)


_Refusal = tuple[int, str, str] | tuple[int, str, str, list[tuple[str, str]]]
"""Status, error code, message and extra headers of an answer the front gives itself."""

_OVERLOADED: _Refusal = (
    503,
    "overloaded",
    "the server is at capacity; retry after a second",
    [("Retry-After", "1")],
)


class _NotRun(Exception):
    """The request was answered without (or before) its thread: the args are a refusal."""


def _run(app: WsgiApp, environ: Environ, deadline: float) -> _Reply:
    """Run the app in a pool thread under the request's deadline; collect its whole response
    and the CPU time it took.

    A request whose deadline passed while it waited for the thread was answered 504 already
    and is not run at all.
    """
    if time.monotonic() >= deadline:
        return _Reply("504 Gateway Timeout", [], b"")
    return _measured(app, environ, deadline)


def _measured(app: WsgiApp, environ: Environ, deadline: float) -> _Reply:
    """Run the app under the request's deadline on this thread, noting the CPU it took."""
    began = time.thread_time()
    with deadline_scope.running_until(deadline):
        reply = _run_app(app, environ)
    reply.cpu = time.thread_time() - began
    return reply


def _run_app(app: WsgiApp, environ: Environ) -> _Reply:
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None  # the legacy write() callable; Flask never uses it

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return _Reply(captured[0], captured[1], body)


def _too_large(limit: int, chunk: int | None = None) -> str:
    if chunk is not None:
        return f"request body has a chunk of {chunk} bytes, over the limit of {limit} bytes"
    return f"request body is over the limit of {limit} bytes"


def _too_slow(received: int, patience: float, rate: float) -> str:
    return (
        f"the request body stalled after {received} bytes: send it without pauses over "
        f"{patience:g} s and at {rate:g} bytes/s or more on average"
    )


def _close_after(start_response: StartResponse) -> None:
    """Have gunicorn close the connection after this response, unread body and all.

    gunicorn drops a Connection header set by the app; its response object, whose method
    start_response is, closes the connection instead of reading on to the next request.
    """
    close = getattr(getattr(start_response, "__self__", None), "force_close", None)
    if close is not None:
        close()


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _send_continue(environ: Environ) -> None:
    """Tell a client waiting on ``Expect: 100-continue`` to send its body, now that it will
    be read (the worker keeps gunicorn from saying so before the front has looked)."""
    if (
        environ.get("HTTP_EXPECT", "").lower() == "100-continue"
        and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
    ):
        connection = environ.get("gunicorn.socket")
        if connection is not None:
            connection.sendall(_CONTINUE)


def _error(
    start_response: StartResponse,
    environ: Environ,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """A JSON error in the route's shape, counted: the app's own metrics never see it."""
    REFUSALS.labels(str(status), code).inc()
    payload: dict[str, Any] = (
        {"error": message}
        if environ.get("PATH_INFO", "").startswith("/v2/")
        else {"error": {"code": code, "message": message}}
    )
    body = json.dumps(payload).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        *(extra or []),
    ]
    headers.append((request_id.HEADER, request_id.request_id(environ.get("HTTP_X_REQUEST_ID"))))
    start_response(f"{status} {_REASONS[status]}", headers)
    return [body]


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
