"""Faults under load: a worker killed outright, the server asked to stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from urllib.parse import urlsplit

import numpy as np
import pytest

from benchmarks.loadgen import LoadResult, Request, run_load
from tests.adversarial.attacks import CLASSIFY
from tests.adversarial.conftest import Server
from tests.images import png
from tests.system import require

pytestmark = pytest.mark.system

IMAGE = png(np.eye(28, dtype=np.uint8) * 255)


def test_killing_a_worker_under_load_loses_almost_nothing(fresh_server: Server) -> None:
    """wrk keeps 8 connections busy for 8 s; one worker is killed with SIGKILL after 2 s."""
    require("wrk", "wrk")
    victim = fresh_server.workers()[0]
    results: list[LoadResult] = []
    request = Request(CLASSIFY, IMAGE, {"Content-Type": "image/png"})
    load = threading.Thread(
        target=lambda: results.append(run_load("wrk", fresh_server.url, request, 8, 8.0))
    )
    load.start()
    time.sleep(2.0)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    recovered_after = None
    while recovered_after is None and time.monotonic() - killed_at < 5.0:
        replacements = [pid for pid in fresh_server.workers() if pid != victim]
        served = set(re.findall(r"worker=<(\d+)>", fresh_server.log.read_text()))
        if len(replacements) == 2 and all(str(pid) in served for pid in replacements):
            recovered_after = time.monotonic() - killed_at
        time.sleep(0.02)
    load.join()
    (result,) = results
    share = result.failures / result.requests
    print(
        f"{result.requests} requests at {result.requests_per_s:.0f}/s, {result.failures} failed "
        f"({share:.3%}); a replacement worker served {recovered_after}s after the kill"
    )
    assert share < 0.001
    assert recovered_after is not None, "no replacement worker served within 5 s"
    assert recovered_after < 2.0


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones(fresh_server: Server) -> None:
    address = urlsplit(fresh_server.url)
    head = (
        f"POST {CLASSIFY} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(IMAGE)}\r\nConnection: close\r\n\r\n"
    ).encode()
    in_flight = []
    for _ in range(4):
        conn = socket.create_connection((address.hostname, address.port), timeout=10)
        conn.sendall(head + IMAGE[:20])  # the request is under way: half its body is sent
        in_flight.append(conn)
    time.sleep(0.5)
    os.kill(fresh_server.master(), signal.SIGTERM)
    time.sleep(1.5)  # workers notice within a second
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address.hostname, address.port), timeout=2)
    for conn in in_flight:
        conn.sendall(IMAGE[20:])
    for conn in in_flight:
        with conn:
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert b'"predictions"' in answer
