"""Bombs in every accepted format and encoding: each is refused cheaply, memory stays bounded."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from tests.adversarial.attacks import ATTACKS, CLASSIFY, INFER, MiB, chunks, raw_request
from tests.adversarial.conftest import Server, cpu_seconds, peak_rss_mib, rss_mib
from tests.images import png

pytestmark = pytest.mark.system

CHEAP_CPU_S = 2.0
"""Most CPU time the workers may spend on any one attack (a 16 MiB upload included).

CPU time, not wall time, so a busy machine does not fail it: well above what the refusals
cost (0.4 s of wall time at most on a quiet machine), well below what the unbounded decoders
took (4.7 s for the PNG bomb, 7 s and more for progressive JPEGs, 30 s for folded multipart
headers)."""

RSS_CEILING_MIB = 400.0
"""Most resident memory a worker may hold at any time, the bombs' peaks included; a worker
serving the test's tiny model starts near 95 MiB."""

SETTLED_MIB = 100.0
"""How far above its memory before the bombs a worker may stay once they are over."""


def _workers_cpu(server: Server) -> float:
    return sum(cpu_seconds(pid) for pid in server.workers())


def _assert_error_shape(response: requests.Response) -> None:
    assert response.headers["Content-Type"] == "application/json", response.text[:200]
    error = response.json()["error"]
    if response.url.split("/", 3)[3].startswith("v2/"):
        assert isinstance(error, str)
        assert error
    else:
        assert set(error) >= {"code", "message"}
        assert error["message"]


@pytest.fixture(scope="module")
def baseline(server: Server) -> dict[int, float]:
    """Each worker's resident memory before any attack."""
    return {pid: rss_mib(pid) for pid in server.workers()}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_answered_cheaply_and_clearly(
    name: str, server: Server, baseline: dict[int, float], http: requests.Session
) -> None:
    attack = ATTACKS[name]
    body = attack.body()
    cpu = _workers_cpu(server)
    started = time.monotonic()
    response = http.post(
        f"{server.url}{attack.path}",
        data=body,
        headers={"Content-Type": attack.content_type, **attack.headers},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    spent = _workers_cpu(server) - cpu
    assert response.status_code in attack.statuses, response.text[:300]
    if response.status_code >= 400:
        _assert_error_shape(response)
    peaks = [peak_rss_mib(pid) for pid in server.workers()]
    print(
        f"{name}: {len(body)} bytes -> {response.status_code} in {elapsed:.3f}s "
        f"({spent:.2f} s of worker CPU), worker peaks {', '.join(f'{p:.0f}' for p in peaks)} MiB"
    )
    assert spent < CHEAP_CPU_S, f"{name}: {len(body)} bytes cost {spent:.2f} s of worker CPU"
    assert max(peaks) < RSS_CEILING_MIB, f"{name}: a worker peaked too high"


def test_eight_concurrent_wide_json_bodies_keep_memory_bounded(server: Server) -> None:
    """Eight 15 MiB V2 bodies of empty arrays at once: each is refused before it is parsed."""
    body = b'{"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1], "data": ['
    body += b"[]," * (5 * MiB) + b"[]]}]}"

    def send() -> int:
        with requests.Session() as session:
            return session.post(
                f"{server.url}{INFER}",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=30,
            ).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: send(), range(8)))
    elapsed = time.monotonic() - started
    peaks = [peak_rss_mib(pid) for pid in server.workers()]
    print(f"8 x {len(body)} bytes -> {statuses} in {elapsed:.2f}s, worker peaks {peaks} MiB")
    # A body that would take a worker's held bodies over its budget is 503 instead.
    assert set(statuses) <= {413, 503}
    assert 413 in statuses
    assert max(peaks) < RSS_CEILING_MIB


@pytest.mark.parametrize("path", [CLASSIFY, INFER])
def test_chunked_body_over_the_limit_is_413(
    path: str, server: Server, baseline: dict[int, float], http: requests.Session
) -> None:
    cpu = _workers_cpu(server)
    started = time.monotonic()
    response = http.post(
        f"{server.url}{path}",
        data=chunks(17 * MiB),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    spent = _workers_cpu(server) - cpu
    print(f"chunked 17 MiB to {path}: {response.status_code} in {elapsed:.3f}s ({spent:.2f} s CPU)")
    assert response.status_code == 413, response.text[:300]
    _assert_error_shape(response)
    assert "over the limit of 16777216 bytes" in response.text
    assert spent < CHEAP_CPU_S


def test_chunked_body_under_the_limit_is_read_whole(server: Server, http: requests.Session) -> None:
    image = png(np.eye(28, dtype=np.uint8) * 255)
    response = http.post(
        f"{server.url}{CLASSIFY}",
        data=iter([image[:10], image[10:]]),
        headers={"Content-Type": "image/png"},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"x" * 10_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET /health/live HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (
            b"GET /health/live HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
            + b"\r\n",
            431,
        ),
        (b"GET /health/live HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n", 400),
        (
            b"GET /health/live HTTP/1.1\r\nHost: a\r\n"
            + b"X-Fold: a\r\n"
            + b" b\r\n" * 5000
            + b"\r\n",
            400,
        ),
    ],
    ids=["long-request-line", "oversized-header", "too-many-headers", "folded", "folded-many"],
)
def test_gunicorn_refusals_are_json(server: Server, request_bytes: bytes, status: int) -> None:
    got, head, body = raw_request(server.url, request_bytes)
    assert got == status, body[:300]
    assert b"content-type: application/json" in head.lower()
    assert body.startswith(b'{"error": {"code": ')


def test_memory_returns_near_baseline(server: Server, baseline: dict[int, float]) -> None:
    """Runs after the attacks above (pytest keeps a module's order)."""
    for pid, before in baseline.items():
        assert pid in server.workers(), f"worker {pid} died during the attacks"
        print(f"worker {pid}: {before:.0f} MiB before the attacks, {rss_mib(pid):.0f} MiB after")
        assert rss_mib(pid) < before + SETTLED_MIB, (pid, before, rss_mib(pid))
