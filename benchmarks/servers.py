"""Start headstart and the minimal stack under gunicorn on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"Listening at: (http://[\d.]+:\d+)")


class ServerFailed(RuntimeError):
    """A server did not come up; the message ends with its log."""


@dataclass(frozen=True)
class Server:
    """How to start one server and how to tell it is ready."""

    command: list[str]
    env: Mapping[str, str]
    ready_path: str


@contextmanager
def running(
    servers: Mapping[str, Server], log_dir: Path, *, timeout: float = 120.0
) -> Iterator[dict[str, str]]:
    """Start every server at once; yield their base URLs once all are ready; stop them after."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, server in servers.items():
            with (log_dir / f"{name}.log").open("wb") as sink:
                processes[name] = subprocess.Popen(
                    server.command,
                    cwd=ROOT,
                    env=dict(server.env),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
        yield {
            name: _wait_ready(processes[name], log_dir / f"{name}.log", server.ready_path, timeout)
            for name, server in servers.items()
        }
    finally:
        _stop(list(processes.values()))


def environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment, ``HEADSTART_*`` settings included, updated with ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each server's gunicorn config makes its own
    env.update(extra)
    return env


def _wait_ready(
    process: subprocess.Popen[bytes], log: Path, ready_path: str, timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    url: str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"gunicorn exited with {process.returncode}:\n{_tail(log)}")
        if url is None:
            match = _LISTENING.search(log.read_text(errors="replace"))
            url = match.group(1) if match else None
        if url is not None:
            try:
                with urllib.request.urlopen(url + ready_path, timeout=2) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.05)
    raise ServerFailed(f"gunicorn was not ready after {timeout:.0f} s:\n{_tail(log)}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all at once (each drains in parallel), then SIGKILL to any that hangs."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
