"""Start headstart and the minimal stack under gunicorn on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LISTENING = re.compile(r"Listening at: (http://[\d.]+:\d+)")


class ServerFailed(RuntimeError):
    """A server did not come up; the message ends with its log."""


def gunicorn() -> list[str]:
    """The gunicorn of the environment the benchmark runs in."""
    script = Path(sys.executable).with_name("gunicorn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gunicorn"]


@contextmanager
def running(
    command: list[str],
    env: Mapping[str, str],
    log_path: Path,
    ready_path: str,
    *,
    timeout: float = 120.0,
) -> Iterator[str]:
    """Run ``command``; yield its base URL once ``ready_path`` answers 200; stop it after."""
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        yield _wait_ready(process, log_path, ready_path, timeout)
    finally:
        _stop(process)


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


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""
