"""Run the real service: the canonical gunicorn command as a subprocess on loopback.

``gunicorn`` binds port 0, so the system picks a free port without a race, and
the helper reads the one it got from gunicorn's "Listening at" log line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.server_command import GUNICORN_ARGS

ROOT = Path(__file__).resolve().parents[1]
COMMAND = (sys.executable, "-m", "gunicorn", *GUNICORN_ARGS)
_LISTENING = re.compile(r"Listening at: (http://[\d.]+:\d+)")


class ServerFailed(RuntimeError):
    """The server did not come up; the message holds its log."""


@contextmanager
def running_server(
    repository: Path,
    env: Mapping[str, str] | None = None,
    *,
    log_path: Path | None = None,
    command: Sequence[str] = COMMAND,
    startup_timeout: float = 60.0,
) -> Iterator[str]:
    """Start gunicorn serving ``repository``; yield its base URL once ``/health/live`` answers.

    ``env`` adds or overrides ``HEADSTART_*`` variables (workers default to 1 and
    threads to 2 here, to spare small test machines). gunicorn's output goes to
    ``log_path`` (a temporary file if not given), so tests can read the access log.
    ``command`` replaces the gunicorn command line, e.g. with ``headstart serve``.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSTART_")}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    full_env.update(
        {
            "HEADSTART_MODEL_REPOSITORY": str(repository),
            "HEADSTART_HOST": "127.0.0.1",
            "HEADSTART_PORT": "0",
            "HEADSTART_WORKERS": "1",
            "HEADSTART_THREADS": "2",
            "HEADSTART_GRACEFUL_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    with tempfile.TemporaryDirectory(prefix="headstart-server-") as scratch:
        full_env["HEADSTART_STATE_DIRECTORY"] = str(Path(scratch) / "state")
        full_env.update(env or {})
        log = log_path or Path(scratch) / "gunicorn.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                list(command), cwd=ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT
            )
        try:
            url = _wait_until_live(process, log, startup_timeout)
            yield url
        finally:
            _stop(process)


def grpc_address(log: Path, timeout: float = 60.0) -> str:
    """The gRPC address a server's log names, once the standard health check says SERVING."""
    match = re.search(r"gRPC at: (\S+)", log.read_text())
    assert match, f"no gRPC address in the log:\n{log.read_text()}"
    address = match.group(1)
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        while True:
            try:
                answer = check(health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=True)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return address
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            assert time.monotonic() < deadline, f"gRPC at {address} is not serving"
            time.sleep(0.05)


def _wait_until_live(process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url: str | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"gunicorn exited with {process.returncode}:\n{_read(log)}")
        if url is None:
            match = _LISTENING.search(_read(log))
            url = match.group(1) if match else None
        if url is not None:
            try:
                with urllib.request.urlopen(f"{url}/health/live", timeout=2) as response:
                    if response.status == 200:
                        return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        time.sleep(0.05)
    _stop(process)
    raise ServerFailed(f"gunicorn was not live after {timeout:.0f}s:\n{_read(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM for a graceful stop, then SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _read(log: Path) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
