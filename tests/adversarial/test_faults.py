"""Faults under load: a worker killed outright, the server asked to stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from tests.adversarial.attacks import CLASSIFY
from tests.adversarial.conftest import PRODUCTION, Server
from tests.builders import write_repository
from tests.images import png
from tests.server import running_server

pytestmark = pytest.mark.system

IMAGE = png(np.eye(28, dtype=np.uint8) * 255)


CONNECTIONS = 8
"""Client connections kept busy while a worker is killed."""

HANG = 120.0
"""Seconds without any answer after which a request counts as unanswered: a hang guard, not a
latency bound; a healthy server answers these in milliseconds."""

TOKENS = {"HEADSTART_ADMIN_TOKEN": "t-admin"}


@dataclass
class _Outcome:
    """What one client request ended as, over every attempt it needed."""

    request_id: str
    first: str
    """``200``, another status, or ``cut`` (the connection broke with no complete answer)."""
    final: str
    """The last attempt's answer: ``200``, ``409`` (a retry found the first attempt's exposure
    stored) or whatever else ended it."""
    attempts: int


class _Client:
    """One keep-alive connection sending classify requests, each under its own request id,
    retrying a request whose connection broke (or that got a 503/504) until it is answered."""

    RETRIED = frozenset({"cut", "503", "504"})

    def __init__(self, url: str, name: str, stop: threading.Event) -> None:
        address = urlsplit(url)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.name, self.stop = name, stop
        self.outcomes: list[_Outcome] = []
        self.connection: http.client.HTTPConnection | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.outcomes.append(self._request(f"{self.name}-{len(self.outcomes)}"))
        except BaseException as error:  # noqa: BLE001 - the test reports it
            self.error = error
        finally:
            if self.connection is not None:
                self.connection.close()

    def _request(self, rid: str) -> _Outcome:
        first = final = self._attempt(rid)
        attempts = 1
        while final in self.RETRIED and attempts < 50:
            if final != "cut":
                time.sleep(0.2)
            final = self._attempt(rid)
            attempts += 1
        return _Outcome(rid, first, final, attempts)

    def _attempt(self, rid: str) -> str:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=HANG)
        headers = {"Content-Type": "image/png", "X-Request-ID": rid, "X-Experiment-Unit": rid}
        try:
            self.connection.request("POST", f"{CLASSIFY}?experiment=kill", IMAGE, headers)
            response = self.connection.getresponse()
            body = response.read()
        except TimeoutError:
            self.connection.close()
            self.connection = None
            return "unanswered"
        except (ConnectionError, http.client.HTTPException):
            # Reset, closed before the status line, or a body cut short: no answer at all.
            self.connection.close()
            self.connection = None
            return "cut"
        if response.will_close:
            self.connection.close()
            self.connection = None
        if response.status == 200:
            assert b'"predictions"' in body, body[:200]
            assert response.getheader("X-Request-ID") == rid
        elif response.status == 409:
            assert b"already has an exposure" in body, body[:200]
        return str(response.status)


def test_a_killed_worker_loses_no_acknowledged_request_and_leaves_none_unanswered(
    tmp_path: Path,
) -> None:
    """SIGKILL one of two workers while 8 connections classify under an experiment.

    What a client may see: a complete 200 answer; or, for the request in flight on a
    connection the killed worker held (at most one per connection), a broken connection,
    after which the same request (same X-Request-ID) sent again is answered 200, or 409 if
    the killed worker had already stored its exposure. Never a 500, a partial 200 or a
    request without an answer. Every request sent is stored exactly once, answered or not,
    and a replacement worker serves. How many requests fit in the run, and how soon the
    replacement serves, depend on the machine and are printed only.
    """
    state = tmp_path / "state"
    log = tmp_path / "gunicorn.log"
    env = {**PRODUCTION, **TOKENS, "HEADSTART_STATE_DIRECTORY": str(state)}
    with running_server(write_repository(tmp_path / "repo"), env, log_path=log) as url:
        server = Server(url, log)
        created = requests.post(
            f"{url}/v1/experiments",
            json={
                "name": "kill",
                "model": "tiny",
                "arms": [
                    {"name": "a", "variant": "pretrained", "weight": 1},
                    {"name": "b", "variant": "baseline", "weight": 1},
                ],
            },
            headers={"Authorization": "Bearer t-admin"},
            timeout=HANG,
        )
        assert created.status_code == 201, created.text
        first_workers = server.workers()
        victim = first_workers[0]
        stop = threading.Event()
        clients = [_Client(url, f"c{i}", stop) for i in range(CONNECTIONS)]
        threads = [threading.Thread(target=c.run) for c in clients]
        for thread in threads:
            thread.start()
        try:
            # The victim must have served this load before it dies, and so must its sibling.
            _wait_for(lambda: all(_served(server, pid) for pid in first_workers), "serving")
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            kill_mark = sum(len(c.outcomes) for c in clients)

            def replaced() -> bool:
                fresh = [pid for pid in server.workers() if pid not in first_workers]
                return bool(fresh) and all(_served(server, pid) for pid in fresh)

            _wait_for(replaced, "a replacement worker serving")
            recovered_after = time.monotonic() - killed_at
            # Every connection, the killed worker's included, goes on to be answered again.
            marks = [len(c.outcomes) for c in clients]
            _wait_for(
                lambda: all(len(c.outcomes) > m + 2 for c, m in zip(clients, marks, strict=True)),
                "every connection answered after the kill",
            )
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=2 * HANG)
        for client in clients:
            assert client.error is None, f"{client.name}: {client.error!r}"
        outcomes = [o for c in clients for o in c.outcomes]
        stored = _exposures(state / "headstart.db")

    cut = [o for o in outcomes if o.first == "cut"]
    retried = [o for o in outcomes if o.first != "200"]
    print(
        f"{len(outcomes)} requests ({kill_mark} before the kill), {len(cut)} cut by the kill "
        f"({sum(o.final == '409' for o in cut)} of them stored before it), "
        f"{len(retried) - len(cut)} answered 503/504 first; a replacement worker served "
        f"{recovered_after:.1f}s after the kill"
    )
    assert {o.first for o in outcomes} <= {"200", *_Client.RETRIED}, Counter(
        o.first for o in outcomes
    )
    assert all(o.final == "200" for o in outcomes if o.first == "200")
    unanswered = [o for o in outcomes if o.final not in {"200", "409"}]
    assert not unanswered, unanswered[:10]
    assert len(cut) <= CONNECTIONS, "a connection lost more than the request in flight"
    # 409 means the first attempt's exposure was stored; only a retried request may see it.
    assert all(o.attempts > 1 for o in outcomes if o.final == "409")
    sent = Counter(o.request_id for o in outcomes)
    assert max(sent.values()) == 1
    assert stored == sent, "acknowledged requests lost, or stored twice, or never sent"


def _served(server: Server, pid: int) -> bool:
    """Whether worker ``pid`` has answered a classify request (not just a probe)."""
    mark = f"worker=<{pid}>"
    return any(CLASSIFY in line and mark in line for line in server.log.read_text().splitlines())


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition``; fail only if it never holds within the hang guard."""
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {HANG:.0f}s"
        time.sleep(0.02)


def _exposures(database: Path) -> Counter[str]:
    """Stored exposures per request id, read from the service's SQLite database."""
    with closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT request_id FROM exposures").fetchall()
    return Counter(str(r[0]) for r in rows)


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(tmp_path: Path) -> None:
    """Requests under way when the server is told to stop are answered; new connections are
    refused. The graceful timeout is the hang guard, so a slow machine changes nothing."""
    log = tmp_path / "gunicorn.log"
    env = {**PRODUCTION, "HEADSTART_GRACEFUL_TIMEOUT": f"{HANG:.0f}"}
    with running_server(write_repository(tmp_path / "repo"), env, log_path=log) as url:
        address = (urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80)
        in_flight = []
        for _ in range(4):
            conn = socket.create_connection(address, timeout=HANG)
            # One whole request first: its answer proves a worker holds this connection.
            conn.sendall(_head("keep-alive") + IMAGE)
            assert _read_answer(conn).startswith(b"HTTP/1.1 200 ")
            conn.sendall(_head("close") + IMAGE[:20])  # the next is under way: half its body
            in_flight.append(conn)
        os.kill(Server(url, log).master(), signal.SIGTERM)
        _wait_for(lambda: _refused(address), "refusal of new connections")
        for conn in in_flight:
            conn.sendall(IMAGE[20:])
        for conn in in_flight:
            with conn:
                answer = b""
                while chunk := conn.recv(65536):
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
            assert b'"predictions"' in answer


def _head(connection: str) -> bytes:
    return (
        f"POST {CLASSIFY} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(IMAGE)}\r\nConnection: {connection}\r\n\r\n"
    ).encode()


def _read_answer(conn: socket.socket) -> bytes:
    """One whole HTTP response with a Content-Length, read off a kept-alive connection."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(65536)
        assert chunk, answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    (length,) = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, answer
        body += chunk
    return head + b"\r\n\r\n" + body


def _refused(address: tuple[str, int]) -> bool:
    """Whether a new connection is refused now (one that is accepted is closed at once)."""
    try:
        socket.create_connection(address, timeout=HANG).close()
    except ConnectionRefusedError:
        return True
    return False
