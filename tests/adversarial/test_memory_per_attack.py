"""Each attack, one after another on one server: the master's and every worker's peak memory
during it stays under twice its idle figure.

The peak is the kernel's high-water mark of resident memory (``VmHWM``), reset before each
attack (``clear_refs``), so each attack is judged on its own.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from tests.adversarial.attacks import ATTACKS, CLASSIFY, MiB, chunks
from tests.adversarial.conftest import PRODUCTION, Server, peak_rss_mib, rss_mib
from tests.adversarial.test_pixel_budget import bomb
from tests.builders import write_repository
from tests.images import png
from tests.server import running_server

pytestmark = pytest.mark.system

ADMIN = {"Authorization": "Bearer admin-secret"}
IMAGE = png(np.eye(28, dtype=np.uint8) * 255)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = write_repository(tmp_path_factory.mktemp("memory-repo"))
    log = tmp_path_factory.mktemp("memory-log") / "gunicorn.log"
    env = {**PRODUCTION, "HEADSTART_ADMIN_TOKEN": "admin-secret"}
    with running_server(repo, env, log_path=log) as url:
        yield Server(url, log)


FLOOD_CLIENTS = 32
THREAD_GROWTH = 16
"""More threads than this during the flood means shadow work grows with the requests: a
thread per shadow run added 31 and 40 to the two workers; the queue adds 3 (its two
threads, and the SQLite checkpointer on the first write)."""
IDLE_THREADS: dict[int, int] = {}
"""Each worker's threads once it has served a little."""


@pytest.fixture(scope="module")
def idle(server: Server) -> dict[int, float]:
    """Each process's resident memory once every worker has served a little."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: _classify(server.url), range(64)))
    time.sleep(0.5)
    IDLE_THREADS.update({pid: _threads(pid) for pid in server.workers()})
    return {pid: rss_mib(pid) for pid in [server.master(), *server.workers()]}


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for process {pid}")


def _classify(url: str, **params: str) -> int:
    with requests.Session() as session:
        return session.post(
            f"{url}{CLASSIFY}",
            params=params,
            data=IMAGE,
            headers={"Content-Type": "image/png", "X-Experiment-Unit": "u"}
            if params
            else {"Content-Type": "image/png"},
            timeout=60,
        ).status_code


def _post(url: str, path: str, body: bytes | Iterator[bytes], content_type: str) -> int | str:
    try:
        with requests.Session() as session:
            return session.post(
                f"{url}{path}",
                data=body,
                headers={"Content-Type": content_type, **ADMIN},
                timeout=60,
            ).status_code
    except requests.ConnectionError:
        return "closed"  # refused and closed while it still sent


def _declared_gigabyte(url: str) -> int | str:
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        head = f"POST {CLASSIFY} HTTP/1.1\r\nHost: a\r\nContent-Length: {1024 * MiB}\r\n\r\n"
        try:
            conn.sendall(head.encode() + bytes(4 * MiB))
            return int(conn.recv(100).split()[1])
        except OSError:
            return "closed"


def _at_once(count: int, attack: Callable[[int], object]) -> list[object]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(attack, range(count)))


PEAK_THREADS: dict[int, int] = {}
"""Each worker's most threads while the shadow flood ran."""


def _shadow_flood(url: str) -> list[object]:
    experiment = {
        "name": "shadow-flood",
        "model": "tiny",
        "mode": "shadow",
        "arms": [{"name": "a", "variant": "pretrained"}, {"name": "b", "variant": "baseline"}],
    }
    created = requests.post(f"{url}/v1/experiments", json=experiment, headers=ADMIN, timeout=30)
    assert created.status_code == 201, created.text
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            for pid in IDLE_THREADS:
                with contextlib.suppress(OSError, AssertionError):
                    PEAK_THREADS[pid] = max(PEAK_THREADS.get(pid, 0), _threads(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return _at_once(
            FLOOD_CLIENTS,
            lambda i: [_classify(url, experiment="shadow-flood") for _ in range(20)],
        )
    finally:
        done.set()
        sampler.join()


def _feedback_flood(url: str) -> list[object]:
    body = b'{"items": [' + b",".join([b"{}"] * 1_000_000) + b"]}"
    return _at_once(8, lambda _: _post(url, "/v1/feedback", body, "application/json"))


def _slow_clients(url: str) -> list[object]:
    """200 connections trickle their headers and 200 their bodies, a byte each 0.5 s, for 3 s,
    while normal requests are served."""
    address = urlsplit(url)
    head = f"POST {CLASSIFY} HTTP/1.1\r\nHost: a\r\n"
    body_head = f"{head}Content-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    conns = []
    try:
        for i in range(400):
            conn = socket.create_connection((address.hostname, address.port), timeout=5)
            conn.sendall((f"{head}X-Slow-{i}: " if i % 2 else body_head).encode())
            conns.append(conn)
        answered: list[object] = []
        for _ in range(6):
            time.sleep(0.5)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.send(b"a")
            answered.append(_classify(url))
        return answered
    finally:
        for conn in conns:
            conn.close()


def _bodies() -> dict[str, Callable[[str], list[object]]]:
    multipart_type, pages = bomb(256)
    _, pages_in_budget = bomb(4)
    encoded = {name: attack.body() for name, attack in ATTACKS.items()}
    return {
        "8 x 256 blank 4000x4000 pages": lambda url: _at_once(
            8, lambda _: _post(url, CLASSIFY, pages, multipart_type)
        ),
        "8 x 4 blank pages (in budget)": lambda url: _at_once(
            8, lambda _: _post(url, CLASSIFY, pages_in_budget, multipart_type)
        ),
        "8 x declared 1 GiB": lambda url: _at_once(8, lambda _: _declared_gigabyte(url)),
        "8 x chunked 17 MiB": lambda url: _at_once(
            8, lambda _: _post(url, CLASSIFY, chunks(17 * MiB), "application/json")
        ),
        "8 x 1M feedback items": _feedback_flood,
        "640 shadow-routed requests": _shadow_flood,
        "400 slow clients": _slow_clients,
        "every bomb of attacks.py, 4 at once each": lambda url: [
            _at_once(4, _sender(url, name, encoded[name])) for name in ATTACKS
        ],
    }


def _sender(url: str, name: str, body: bytes) -> Callable[[int], object]:
    """Send the attack ``name`` of attacks.py with its own headers."""
    attack = ATTACKS[name]

    def send(_: int) -> object:
        try:
            with requests.Session() as session:
                return session.post(
                    f"{url}{attack.path}",
                    data=body,
                    headers={"Content-Type": attack.content_type, **attack.headers},
                    timeout=60,
                ).status_code
        except requests.ConnectionError:
            return "closed"

    return send


def _reset_peaks(pids: list[int]) -> None:
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.mark.parametrize("attack", list(_bodies()))
def test_peak_memory_stays_under_twice_idle(
    server: Server, idle: dict[int, float], attack: str
) -> None:
    pids = list(idle)
    _reset_peaks(pids)
    started = time.monotonic()
    outcome = _bodies()[attack](server.url)
    elapsed = time.monotonic() - started
    peaks = {pid: peak_rss_mib(pid) for pid in pids}
    summary = json.dumps(outcome, default=str)
    print(
        f"\n{attack} ({elapsed:.1f}s): {summary[:200]}\n"
        + "\n".join(
            f"  pid {pid}{' (master)' if pid == pids[0] else ''}: idle {idle[pid]:.0f} MiB, "
            f"peak {peaks[pid]:.0f} MiB ({peaks[pid] / idle[pid]:.2f}x)"
            for pid in pids
        )
    )
    assert _classify(server.url) == 200  # the server still serves
    for pid in pids:
        assert peaks[pid] < 2 * idle[pid], (attack, pid, idle[pid], peaks[pid])


def test_shadow_work_grows_no_threads(server: Server, idle: dict[int, float]) -> None:
    """Runs after the shadow flood above (pytest keeps a module's order): during it, a
    worker grows by its shadow threads and what its libraries start on first use, not by a
    thread per shadow run."""
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    dropped = [
        line
        for line in metrics.splitlines()
        if line.startswith('headstart_shadow_dropped_total{experiment="shadow-flood"}')
    ]
    threads = {pid: (IDLE_THREADS[pid], PEAK_THREADS[pid]) for pid in server.workers()}
    print(f"shadow runs dropped: {dropped or 'none'}; threads before and at most: {threads}")
    for pid, (before, most) in threads.items():
        assert most - before < THREAD_GROWTH, (pid, before, most)
