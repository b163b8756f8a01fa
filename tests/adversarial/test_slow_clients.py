"""Hundreds of clients that send their headers or body a byte at a time starve nobody."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from tests.adversarial.attacks import CLASSIFY
from tests.adversarial.conftest import Server
from tests.images import png

pytestmark = pytest.mark.system

SLOW_HEADERS = 200
SLOW_BODIES = 200
ANSWER_WITHIN_S = 1.0


def _open(url: str, first_bytes: bytes) -> socket.socket:
    address = urlsplit(url)
    conn = socket.create_connection((address.hostname, address.port), timeout=5)
    conn.sendall(first_bytes)
    return conn


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
                timeout=ANSWER_WITHIN_S * 5,
            )
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200, (path, response.text[:200])
    # Fresh connections too: a new client must be accepted, not queued behind the slow ones.
    for _ in range(10):
        started = time.monotonic()
        fresh = requests.get(f"{server.url}/health/live", timeout=ANSWER_WITHIN_S * 5)
        latencies.append(time.monotonic() - started)
        assert fresh.status_code == 200
    held = sum(1 for conn in slow_clients if conn.fileno() >= 0)
    assert held == SLOW_HEADERS + SLOW_BODIES
    assert max(latencies) < ANSWER_WITHIN_S, f"slowest {max(latencies):.3f}s"
    print(
        f"{held} slow connections open; {len(latencies)} requests, "
        f"p50 {np.percentile(latencies, 50) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
