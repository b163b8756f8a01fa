"""Bodies that are too large, too slow or stop halfway: answered at once, then the connection
closed, so that no client keeps a worker reading or a buffer filled."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.adversarial.attacks import CLASSIFY, MiB
from tests.adversarial.conftest import PRODUCTION, Server, peak_rss_mib, rss_mib
from tests.builders import write_repository
from tests.server import running_server

pytestmark = pytest.mark.system

BODY_TIMEOUT_S = 1.0
CLOSED_WITHIN_S = 5.0
"""How soon after its answer a refused body's connection must be closed: the server that
read on kept it open for as long as the client sent."""

HEAD = f"POST {CLASSIFY} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"


@pytest.fixture(scope="module")
def body_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Production workers with a body timeout of one second."""
    repo = write_repository(tmp_path_factory.mktemp("body-repo"))
    log = tmp_path_factory.mktemp("body-log") / "gunicorn.log"
    env = {**PRODUCTION, "HEADSTART_BODY_TIMEOUT": str(BODY_TIMEOUT_S)}
    with running_server(repo, env, log_path=log) as url:
        yield Server(url, log)


def _connect(server: Server) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def _status(conn: socket.socket) -> tuple[int, bytes]:
    """The status of the first response on ``conn`` and everything read with it."""
    received = b""
    while b"\r\n" not in received:
        chunk = conn.recv(65536)
        assert chunk, f"closed without an answer after {received!r}"
        received += chunk
    return int(received.split()[1]), received


def _closed_while_sending(conn: socket.socket, seconds: float) -> float | None:
    """Keep sending body bytes; how long until the server closed the connection, or None."""
    block = bytes(64 * 1024)
    conn.settimeout(0.2)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            conn.sendall(block)
            if conn.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: the server closed it
            return time.monotonic() - started
    return None


@pytest.mark.parametrize("path", [CLASSIFY, "/v1/feedback"])
def test_a_body_declared_over_the_limit_is_413_and_never_read(
    body_server: Server, path: str
) -> None:
    """Before the token is looked at, too: an unauthenticated client must not keep a worker
    reading what it sends."""
    head = HEAD.replace(CLASSIFY, path).replace("image/png", "application/json")
    with _connect(body_server) as conn:
        conn.sendall(f"{head}Content-Length: {1024 * MiB}\r\n\r\n".encode() + bytes(MiB))
        status, received = _status(conn)
        assert status == 413, received[:300]
        closed = _closed_while_sending(conn, 10 * CLOSED_WITHIN_S)
    print(f"declared 1 GiB to {path}: 413, connection closed {closed} s later")
    assert closed is not None
    assert closed < CLOSED_WITHIN_S


def test_a_chunked_body_over_the_limit_is_413_and_the_rest_never_read(
    body_server: Server,
) -> None:
    chunk = b"%x\r\n%s\r\n" % (MiB, bytes(MiB))
    with _connect(body_server) as conn:
        conn.sendall(f"{HEAD}Transfer-Encoding: chunked\r\n\r\n".encode())
        for _ in range(17):
            conn.sendall(chunk)
        status, received = _status(conn)
        assert status == 413, received[:300]
        conn.settimeout(0.2)
        started = time.monotonic()
        closed = None
        while closed is None and time.monotonic() - started < 10 * CLOSED_WITHIN_S:
            try:
                conn.sendall(chunk)
                if conn.recv(65536) == b"":
                    closed = time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:
                closed = time.monotonic() - started
    print(f"chunked past 16 MiB: 413, connection closed {closed} s later")
    assert closed is not None
    assert closed < CLOSED_WITHIN_S


def test_expect_100_continue_is_not_promised_to_a_body_over_the_limit(
    body_server: Server,
) -> None:
    with _connect(body_server) as conn:
        conn.sendall(f"{HEAD}Content-Length: {1024 * MiB}\r\nExpect: 100-continue\r\n\r\n".encode())
        status, received = _status(conn)
    assert status == 413, received[:300]


def test_expect_100_continue_is_answered_when_the_body_will_be_read(
    body_server: Server,
) -> None:
    import numpy as np

    from tests.images import png

    image = png(np.eye(28, dtype=np.uint8) * 255)
    with _connect(body_server) as conn:
        conn.sendall(f"{HEAD}Content-Length: {len(image)}\r\nExpect: 100-continue\r\n\r\n".encode())
        status, received = _status(conn)
        assert status == 100, received[:300]
        conn.sendall(image)
        while b" 200 " not in received:
            chunk = conn.recv(65536)
            assert chunk, received[-300:]
            received += chunk
    assert received.count(b"100 Continue") == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_body_that_stops_halfway_is_408_and_its_connection_closed(
    body_server: Server, chunked: bool
) -> None:
    with _connect(body_server) as conn:
        if chunked:
            conn.sendall(f"{HEAD}Transfer-Encoding: chunked\r\n\r\n".encode())
            conn.sendall(b"%x\r\n%s\r\n" % (MiB, bytes(MiB)))
        else:
            conn.sendall(f"{HEAD}Content-Length: {2 * MiB}\r\n\r\n".encode() + bytes(MiB))
        started = time.monotonic()
        status, received = _status(conn)
        elapsed = time.monotonic() - started
        assert status == 408, received[:300]
        conn.settimeout(CLOSED_WITHIN_S)
        while chunk := conn.recv(65536):
            received += chunk  # the rest of the answer, then the close
    assert b"stalled after" in received
    print(f"stopped halfway: 408 after {elapsed:.2f}s")


def test_a_body_trickled_below_the_minimum_rate_is_408(body_server: Server) -> None:
    with _connect(body_server) as conn:
        conn.sendall(f"{HEAD}Content-Length: 100000\r\n\r\n".encode())
        conn.settimeout(0.3)
        started = time.monotonic()
        status = None
        while status is None and time.monotonic() - started < 30:
            try:
                conn.sendall(b"a")  # a byte every 0.3 s: never a pause of a whole second
                status, _ = _status(conn)
            except TimeoutError:
                continue
    elapsed = time.monotonic() - started
    print(f"trickled: {status} after {elapsed:.2f}s")
    assert status == 408


def test_bodies_that_stop_halfway_hold_bounded_memory_and_give_it_back(tmp_path: Path) -> None:
    """24 connections send 15 MiB of a declared 16 MB body, then stop: those the workers'
    body budget takes are cut at the body timeout, the others are refused at once."""
    repo = write_repository(tmp_path / "repo")
    env = {**PRODUCTION, "HEADSTART_BODY_TIMEOUT": "2"}
    with running_server(repo, env, log_path=tmp_path / "gunicorn.log") as url:
        server = Server(url, tmp_path / "gunicorn.log")
        processes = [server.master(), *server.workers()]
        idle = {pid: rss_mib(pid) for pid in processes}
        conns: list[socket.socket] = []
        answered: list[int | str] = []
        try:
            for _ in range(24):
                conns.append(_connect(server))
                conns[-1].sendall(f"{HEAD}Content-Length: {16_000_000}\r\n\r\n".encode())
                with contextlib.suppress(OSError):  # refused and closed while it sent
                    conns[-1].sendall(bytes(15 * MiB))
            for conn in conns:
                conn.settimeout(15)
                try:
                    answered.append(_status(conn)[0])
                except OSError:
                    answered.append("reset")  # closed unread: the answer may be lost with it
        finally:
            for conn in conns:
                conn.close()
        time.sleep(0.5)
        after = {pid: rss_mib(pid) for pid in processes}
        peaks = {pid: peak_rss_mib(pid) for pid in processes}
    print(f"statuses {answered}; idle {idle} MiB, peak {peaks} MiB, after {after} MiB")
    assert set(answered) <= {408, 503, "reset"}
    assert 408 in answered
    for pid, before in idle.items():
        assert peaks[pid] < 2 * before, (pid, before, peaks[pid])
        assert after[pid] < before + 60, (pid, before, after[pid])


@pytest.mark.parametrize("size", [b"ffffffffffffffff", b"f" * 40, b"1000001"])
def test_a_chunk_declared_over_the_limit_is_413_at_once(body_server: Server, size: bytes) -> None:
    """Not a wait for bytes that never come: the chunk's size alone is over the limit."""
    with _connect(body_server) as conn:
        conn.sendall(f"{HEAD}Transfer-Encoding: chunked\r\n\r\n".encode() + size + b"\r\nabc")
        status, received = _status(conn)
        conn.settimeout(CLOSED_WITHIN_S)
        while chunk := conn.recv(65536):
            received += chunk
    assert status == 413, received[:300]
    assert b"request body has a chunk of" in received
