"""Pixel bombs within the per-image limit: each request has a pixel budget, and the request
deadline holds for everyone while every thread decodes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.adversarial.attacks import CLASSIFY
from tests.adversarial.conftest import PRODUCTION, Server, peak_rss_mib, rss_mib
from tests.builders import write_repository
from tests.images import png
from tests.server import running_server

pytestmark = pytest.mark.system

TIMEOUT_S = 3.0
"""The request deadline of the server under attack."""

LATE_S = 2 * TIMEOUT_S + 4.0
"""An answer later than this broke the deadline: the unguarded service answered after ten
times the deadline and more, so any machine answering in time stays far under it."""

BOMBS = 8


@cache
def blank_page() -> bytes:
    """A blank 4000 x 4000 greyscale PNG: 16 M pixels (the per-image limit) in about 16 KB."""
    return png(np.full((4000, 4000), 255, dtype=np.uint8))


def bomb(images: int) -> tuple[str, bytes]:
    """A multipart body of ``images`` blank pages."""
    part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    body = b"".join(part + blank_page() + b"\r\n" for _ in range(images)) + b"--b--\r\n"
    return "multipart/form-data; boundary=b", body


def test_a_request_over_the_pixel_budget_is_refused_before_decoding(
    server: Server, http: requests.Session
) -> None:
    content_type, body = bomb(256)
    started = time.monotonic()
    response = http.post(
        f"{server.url}{CLASSIFY}", data=body, headers={"Content-Type": content_type}, timeout=60
    )
    elapsed = time.monotonic() - started
    print(f"256 blank pages ({len(body)} bytes): {response.status_code} in {elapsed:.2f}s")
    assert response.status_code == 413, response.text[:300]
    message = response.json()["error"]["message"]
    assert "4096000000 pixels" in message
    assert "per request" in message


@pytest.fixture
def deadline_server(tmp_path: Path) -> Iterator[Server]:
    """Production workers with a short deadline and a pixel budget the bombs fit in."""
    repo = write_repository(tmp_path / "repo")
    env = {
        **PRODUCTION,
        "HEADSTART_REQUEST_TIMEOUT": str(TIMEOUT_S),
        "HEADSTART_MAX_REQUEST_PIXELS": str(64 * 16_000_000),
    }
    with running_server(repo, env, log_path=tmp_path / "gunicorn.log") as url:
        yield Server(url, tmp_path / "gunicorn.log")


def test_the_deadline_holds_for_everyone_under_eight_pixel_bombs(
    deadline_server: Server,
) -> None:
    """Eight requests of 64 blank pages each (a minute of decoding apiece), then normal ones."""
    server = deadline_server
    processes = [server.master(), *server.workers()]
    idle = {pid: rss_mib(pid) for pid in processes}
    content_type, body = bomb(64)
    image = png(np.eye(28, dtype=np.uint8) * 255)

    def attack(_: int) -> tuple[int, float]:
        started = time.monotonic()
        with requests.Session() as session:
            status = session.post(
                f"{server.url}{CLASSIFY}",
                data=body,
                headers={"Content-Type": content_type},
                timeout=120,
            ).status_code
        return status, time.monotonic() - started

    def normal(_: int) -> tuple[int, float]:
        started = time.monotonic()
        with requests.Session() as session:
            status = session.post(
                f"{server.url}{CLASSIFY}",
                data=image,
                headers={"Content-Type": "image/png"},
                timeout=120,
            ).status_code
        return status, time.monotonic() - started

    with ThreadPoolExecutor(BOMBS + 4) as pool:
        bombs = [pool.submit(attack, i) for i in range(BOMBS)]
        time.sleep(1.0)  # every thread of both workers is decoding
        normals = list(pool.map(normal, range(4)))
        attacks = [b.result() for b in bombs]
    after = [normal(0) for _ in range(3)]
    peaks = {pid: peak_rss_mib(pid) for pid in processes}
    print(
        f"bombs {attacks}\nnormal during {normals}\nnormal after {after}\n"
        + "\n".join(f"pid {p}: idle {idle[p]:.0f} MiB, peak {peaks[p]:.0f} MiB" for p in processes)
    )
    for status, elapsed in normals:
        assert status in (200, 503, 504)
        assert elapsed < LATE_S, f"a normal request was answered {status} after {elapsed:.1f}s"
    for status, elapsed in attacks:
        assert status in (503, 504)
        assert elapsed < LATE_S, f"a bomb was answered {status} after {elapsed:.1f}s"
    # The abandoned bombs stop decoding: the next normal requests find free threads.
    assert [status for status, _ in after] == [200, 200, 200]
    for pid in processes:
        assert peaks[pid] < 2 * idle[pid], (pid, idle[pid], peaks[pid])
