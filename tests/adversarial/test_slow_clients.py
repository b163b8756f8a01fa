"""Hundreds of clients that send their headers or body a byte at a time starve nobody."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
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

SLOW_HEADERS = 200
SLOW_BODIES = 200
NO_ANSWER_S = 60.0
"""How long a request may go unanswered before it counts as never answered."""
PATIENT = {**PRODUCTION, "HEADSTART_BODY_TIMEOUT": "3600"}
"""A server that never drops the slow bodies for being slow (they stay connected all test),
so a request served only once slow clients were dropped would go unanswered."""


def _open(url: str, first_bytes: bytes) -> socket.socket:
    address = urlsplit(url)
    conn = socket.create_connection((address.hostname, address.port), timeout=5)
    conn.sendall(first_bytes)
    return conn


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    log = tmp_path / "gunicorn.log"
    with running_server(write_repository(tmp_path / "repo"), PATIENT, log_path=log) as url:
        yield Server(url, log)


def _still_connected(conn: socket.socket) -> bool:
    """The server has neither closed ``conn`` nor answered it (a 408 would be data)."""
    readable, _, _ = select.select([conn], [], [], 0)
    return not readable


@pytest.fixture
def slow_clients(server: Server) -> Iterator[list[socket.socket]]:
    """Connections that have sent part of their headers or body, and trickle one byte a second."""
    head = f"POST {CLASSIFY} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    conns = [_open(server.url, f"{head}X-Slow-{i}: ".encode()) for i in range(SLOW_HEADERS)]
    body_head = f"{head}Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    conns += [_open(server.url, body_head.encode() + b"\x89PNG") for _ in range(SLOW_BODIES)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(1.0):
            for conn in conns:
                with contextlib.suppress(OSError):  # a connection the server closed
                    conn.send(b"a")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        yield conns
    finally:
        stop.set()
        trickler.join()
        for conn in conns:
            conn.close()


def test_normal_requests_and_probes_are_answered_while_slow_clients_hold_connections(
    server: Server, slow_clients: list[socket.socket], http: requests.Session
) -> None:
    time.sleep(1.5)  # the slow clients have been read from and are waiting for more
    assert all(_still_connected(conn) for conn in slow_clients)
    image = png(np.eye(28, dtype=np.uint8) * 255)
    latencies: list[float] = []
    for _ in range(20):
        for method, path, data in (
            ("GET", "/health/ready", None),
            ("POST", CLASSIFY, image),
            ("GET", "/v2/health/ready", None),
        ):
            started = time.monotonic()
            response = http.request(
                method,
                f"{server.url}{path}",
                data=data,
                headers={"Content-Type": "image/png"} if data else {},
                timeout=NO_ANSWER_S,
            )
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200, (path, response.text[:200])
    # Fresh connections too: a new client must be accepted, not queued behind the slow ones.
    for _ in range(10):
        started = time.monotonic()
        fresh = requests.get(f"{server.url}/health/live", timeout=NO_ANSWER_S)
        latencies.append(time.monotonic() - started)
        assert fresh.status_code == 200
    # Every answer came while every slow client still held its connection: none was served
    # by dropping one. How fast they came is the benchmarks' business, not this test's.
    held = sum(1 for conn in slow_clients if _still_connected(conn))
    assert held == SLOW_HEADERS + SLOW_BODIES
    print(
        f"{held} slow connections open; {len(latencies)} requests, "
        f"p50 {np.percentile(latencies, 50) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
