"""The worker's WSGI front, driven from greenlets as gunicorn's gevent worker drives it."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import pytest

from service import deadline as deadline_scope
from service.front import Front, Limits

LIMITS = Limits(
    threads=1, max_queue=0, request_timeout=5.0, max_body_bytes=100, keepalive_requests=3
)


HANG_S = 30.0
"""Longest a test waits for something that must happen; only a hang takes it."""


class Echo:
    """A WSGI app that echoes the body it got; a held one waits in its thread until released,
    so a test controls what is still running instead of racing a sleep."""

    def __init__(self, held: bool = False) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        if not held:
            self.released.set()
        self.seen: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not environ["PATH_INFO"].startswith("/health/"):  # probes run on the loop itself
            self.entered.set()
            self.released.wait(HANG_S)  # a real thread: the test's event loop goes on meanwhile
        self.seen.append(environ)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]


def _until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until ``condition`` holds."""
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert time.monotonic() < deadline, "waited too long: something hung"
        gevent.sleep(0.005)


class Response:
    """What the front started: status, headers, and whether it asked for the close."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}
        self.closed = False

    def start_response(self, status: str, headers: list[tuple[str, str]]) -> None:
        self.status, self.headers = status, dict(headers)

    def force_close(self) -> None:  # what gunicorn's response object offers
        self.closed = True


def _call(
    front: Front, path: str = "/v1/models/m/classify", body: bytes = b"", **environ: Any
) -> tuple[Response, bytes]:
    response = Response()
    env = {
        "PATH_INFO": path,
        "REQUEST_METHOD": "POST",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        **environ,
    }
    out = b"".join(front(env, response.start_response))
    return response, out


def test_a_request_runs_in_the_pool_and_returns_the_apps_answer() -> None:
    app = Echo()
    response, body = _call(Front(app, LIMITS), body=b"hello")
    assert response.status == "200 OK"
    assert body == b"hello"


def test_a_chunked_body_is_read_whole_before_the_app_runs() -> None:
    app = Echo()
    response, body = _call(
        Front(app, LIMITS), body=b"x" * 100, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert (response.status, body) == ("200 OK", b"x" * 100)
    assert app.seen[0]["CONTENT_LENGTH"] == "100"
    assert "HTTP_TRANSFER_ENCODING" not in app.seen[0]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (
            "/v1/models/m/classify",
            {"code": "payload_too_large", "message": "request body is over the limit of 100 bytes"},
        ),
        ("/v2/models/m/infer", "request body is over the limit of 100 bytes"),
    ],
)
def test_a_chunked_body_over_the_limit_is_413_in_the_routes_shape(path: str, error: object) -> None:
    app = Echo()
    response, body = _call(
        Front(app, LIMITS), path, b"x" * 101, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status == "413 Content Too Large"
    assert json.loads(body) == {"error": error}
    assert "X-Request-ID" in response.headers
    assert app.seen == []


def test_a_request_past_its_deadline_is_504_and_frees_the_connection() -> None:
    app = Echo(held=True)
    front = Front(app, Limits(**{**LIMITS.__dict__, "request_timeout": 0.05}))
    response, body = _call(front)
    assert response.status == "504 Gateway Timeout"
    assert json.loads(body)["error"]["code"] == "timeout"
    assert app.seen == []  # answered while the app was still running
    app.released.set()


def test_a_full_queue_sheds_load_with_503_and_retry_after() -> None:
    app = Echo(held=True)
    front = Front(app, LIMITS)  # one thread, no queue
    first = gevent.spawn(_call, front)
    _until(app.entered.is_set)
    shed, body = _call(front)
    app.released.set()
    assert shed.status == "503 Service Unavailable"
    assert shed.headers["Retry-After"] == "1"
    assert json.loads(body)["error"]["code"] == "overloaded"
    assert first.get(timeout=HANG_S)[0].status == "200 OK"


def test_probes_answer_while_the_pool_is_saturated() -> None:
    app = Echo(held=True)
    front = Front(app, LIMITS)
    busy = gevent.spawn(_call, front)
    _until(app.entered.is_set)
    probe, _ = _call(front, "/health/ready")
    assert probe.status == "200 OK"
    assert not busy.ready()  # the pool's one thread was busy all along
    app.released.set()
    busy.get(timeout=HANG_S)


def test_a_connection_is_closed_after_its_share_of_responses() -> None:
    front = Front(Echo(), LIMITS)
    connection = io.BytesIO()  # any object standing for gunicorn's socket
    closed = [_call(front, **{"gunicorn.socket": connection})[0].closed for _ in range(4)]
    assert closed == [False, False, True, True]


def test_a_request_answered_504_still_counts_until_its_thread_is_done() -> None:
    app = Echo(held=True)
    front = Front(app, Limits(**{**LIMITS.__dict__, "request_timeout": 0.05}))
    timed_out, _ = _call(front)
    assert timed_out.status.startswith("504")
    shed, _ = _call(front)  # the one thread is still busy with the first request
    assert shed.status.startswith("503")
    app.released.set()
    _until(lambda: front.in_flight == 0)
    app.released.clear()
    assert _call(front)[0].status.startswith("504")  # taken by the free thread, not shed
    assert len(app.seen) == 1
    app.released.set()


def test_a_request_waiting_for_a_thread_keeps_its_deadline_and_is_never_run() -> None:
    app = Echo(held=True)
    front = Front(app, Limits(**{**LIMITS.__dict__, "max_queue": 1, "request_timeout": 0.2}))
    busy = gevent.spawn(_call, front)
    _until(app.entered.is_set)
    waiting, body = _call(front)  # the one thread is held past the deadline
    assert waiting.status == "504 Gateway Timeout"
    assert json.loads(body)["error"]["code"] == "timeout"
    assert app.seen == []  # answered while the first request still held the thread
    app.released.set()
    busy.get(timeout=HANG_S)
    _until(lambda: front.in_flight == 0)
    gevent.sleep(0.2)  # time for the abandoned request to reach the app, were it ever to
    assert len(app.seen) == 1  # the abandoned request never reached the app


def test_the_app_runs_under_the_requests_deadline() -> None:
    from service import deadline

    seen: list[bool] = []
    answered = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(deadline.passed())
        answered.wait(HANG_S)  # until the front has answered 504: the deadline is past
        seen.append(deadline.passed())
        start_response("200 OK", [])
        return [b""]

    # Long enough that the thread starts well within it even on a loaded machine.
    front = Front(app, Limits(**{**LIMITS.__dict__, "request_timeout": 2.0}))
    assert _call(front)[0].status.startswith("504")
    answered.set()
    _until(lambda: len(seen) == 2)
    assert seen == [False, True]
    assert not deadline.passed()  # the event loop's thread has no deadline of its own


def test_a_body_declared_over_the_limit_is_413_and_its_connection_closed_unread() -> None:
    app = Echo()
    stream = io.BytesIO(b"x" * 1000)
    response, _ = _call(Front(app, LIMITS), CONTENT_LENGTH="1000", **{"wsgi.input": stream})
    assert response.status == "413 Content Too Large"
    assert response.closed
    assert stream.tell() == 0
    assert app.seen == []


def test_a_chunked_body_over_the_limit_closes_its_connection() -> None:
    response, _ = _call(
        Front(Echo(), LIMITS), body=b"x" * 101, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert response.status == "413 Content Too Large"
    assert response.closed


class Stalling(io.RawIOBase):
    """A body that sends ``first`` and then nothing more, like a client that stopped."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def read(self, size: int = -1) -> bytes:
        if self.first:
            out, self.first = self.first, b""
            return out
        gevent.sleep(30)
        return b""


def test_a_body_that_stalls_is_408_and_its_connection_closed() -> None:
    app = Echo()
    limits = Limits(**{**LIMITS.__dict__, "body_timeout": 0.1})
    response, body = _call(
        Front(app, limits), CONTENT_LENGTH="100", **{"wsgi.input": Stalling(b"x" * 50)}
    )
    # Were the stall not cut short, the body would end after 30 s as 400, not 408.
    assert response.status == "408 Request Timeout"
    assert response.closed
    assert "stalled after 50 bytes" in json.loads(body)["error"]["message"]
    assert app.seen == []


class Trickling(io.RawIOBase):
    """A body that sends one byte every ``interval`` seconds, never pausing long."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def read(self, size: int = -1) -> bytes:
        gevent.sleep(self.interval)
        return b"x"


def test_a_body_slower_than_the_minimum_rate_is_408() -> None:
    limits = Limits(**{**LIMITS.__dict__, "body_timeout": 0.2, "min_body_rate": 100.0})
    response, _ = _call(
        Front(Echo(), limits), CONTENT_LENGTH="100", **{"wsgi.input": Trickling(0.05)}
    )
    # Were the rate not enforced, the whole body would arrive (after 5 s) and be echoed.
    assert response.status == "408 Request Timeout"


def test_bodies_over_the_workers_buffer_budget_are_503_and_released_when_done() -> None:
    app = Echo(held=True)
    limits = Limits(**{**LIMITS.__dict__, "threads": 2, "max_queue": 2, "max_buffered_bytes": 150})
    front = Front(app, limits)
    first = gevent.spawn(_call, front, body=b"x" * 100)
    _until(app.entered.is_set)
    assert front.buffered == 100  # held while its thread runs
    refused, _ = _call(front, body=b"y" * 100)
    assert refused.status == "503 Service Unavailable"
    assert refused.headers["Retry-After"] == "1"
    assert refused.closed
    assert front.buffered == 100
    app.released.set()
    assert first.get(timeout=HANG_S)[0].status == "200 OK"
    _until(lambda: front.buffered == 0)
    assert _call(front, body=b"z" * 100)[0].status == "200 OK"
    assert front.buffered == 0


def test_a_refused_or_timed_out_body_releases_what_it_held() -> None:
    limits = Limits(**{**LIMITS.__dict__, "body_timeout": 0.1})
    front = Front(Echo(), limits)
    _call(front, CONTENT_LENGTH="100", **{"wsgi.input": Stalling(b"x" * 50)})
    assert front.buffered == 0
    _call(front, body=b"x" * 101, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert front.buffered == 0
    app = Echo(held=True)
    slow = Front(app, Limits(**{**LIMITS.__dict__, "request_timeout": 0.05}))
    assert _call(slow, body=b"x" * 10)[0].status.startswith("504")
    assert slow.buffered == 10  # its thread still has the body
    app.released.set()
    _until(lambda: slow.buffered == 0)


def test_a_body_cut_short_by_its_client_never_reaches_the_app() -> None:
    app = Echo()
    front = Front(app, LIMITS)
    response, body = _call(front, CONTENT_LENGTH="100", **{"wsgi.input": io.BytesIO(b"x" * 50)})
    assert response.status == "400 Bad Request"
    assert response.closed
    assert "ended after 50 of 100 bytes" in json.loads(body)["error"]["message"]
    assert app.seen == []
    assert front.buffered == 0


class Spinning:
    """A WSGI app that notes the thread it ran on and spends ``cpu`` seconds of CPU there."""

    def __init__(self, cpu: float = 0.0) -> None:
        self.cpu = cpu
        self.threads: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.threads.append(threading.get_ident())
        began = time.thread_time()
        while time.thread_time() - began < self.cpu:
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


INLINE = Limits(**{**LIMITS.__dict__, "max_body_bytes": 1 << 20, "inline_budget": 0.01})


def _anything(environ: dict[str, Any], body: bytes) -> bool:
    return True


def test_a_cheap_route_the_rule_allows_runs_on_the_event_loop_once_measured() -> None:
    app = Spinning()
    front = Front(app, INLINE, _anything)
    for _ in range(3):
        assert _call(front, body=b"x")[0].status == "200 OK"
    loop = threading.get_ident()
    # The first request of a route goes to a thread, which measures it; then it is cheap.
    assert app.threads[0] != loop
    assert app.threads[1:] == [loop, loop]


def test_what_the_rule_refuses_never_runs_on_the_event_loop() -> None:
    seen: list[tuple[str, bytes]] = []

    def only_embed(environ: dict[str, Any], body: bytes) -> bool:
        seen.append((environ["PATH_INFO"], body))
        return bool(environ["PATH_INFO"].endswith("/embed"))

    app = Spinning()
    front = Front(app, INLINE, only_embed)
    for path in ("/v1/models/m/classify", "/v1/models/m/embed") * 3:
        _call(front, path, body=b"digit")
    loop = threading.get_ident()
    on_loop = [i for i, thread in enumerate(app.threads) if thread == loop]
    assert on_loop == [3, 5]  # the embeds after the first; never a classify
    assert seen[0] == ("/v1/models/m/classify", b"digit")  # the rule reads the whole body


def test_a_body_over_64_kib_always_goes_to_a_thread() -> None:
    app = Spinning()
    front = Front(app, INLINE, _anything)
    for _ in range(3):
        _call(front, body=b"x" * (64 * 1024 + 1))
    assert threading.get_ident() not in app.threads


def test_a_costly_request_sends_its_route_to_the_threads_until_it_is_cheap_again() -> None:
    app = Spinning()
    front = Front(app, INLINE, _anything)
    loop = threading.get_ident()
    for _ in range(3):
        _call(front)
    app.cpu = 0.005  # half the budget: the route stays on the event loop
    _call(front)
    _call(front)
    assert app.threads[-2:] == [loop, loop]
    app.cpu = 0.1  # ten budgets: it runs on the loop (the route was cheap), and moves it
    _call(front)
    assert app.threads[-1] == loop
    app.cpu = 0.0
    _call(front)
    assert app.threads[-1] != loop
    runs = 0
    while app.threads[-1] != loop:
        runs += 1
        assert runs < 100, "the route never came back to the event loop"
        _call(front)
    # The average weighs the latest request by a fifth: 0.02 s halves in about three.
    assert 2 <= runs <= 8


def test_no_budget_runs_every_request_in_a_thread() -> None:
    app = Spinning()
    front = Front(app, Limits(**{**INLINE.__dict__, "inline_budget": 0.0}), _anything)
    for _ in range(3):
        _call(front)
    assert threading.get_ident() not in app.threads


def test_a_request_on_the_event_loop_runs_under_its_deadline() -> None:
    seen: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(deadline_scope.passed())
        start_response("200 OK", [])
        return [b""]

    front = Front(app, Limits(**{**INLINE.__dict__, "request_timeout": 1e-9}), _anything)
    front.costs["/v1/models/m/classify"] = 0.0  # measured cheap already
    response, _ = _call(front)
    assert response.status == "200 OK"  # not abandoned: nothing else waited for it
    assert seen == [True]  # but its steps see their deadline has passed, and stop
