"""gunicorn's hooks for gRPC: the master holds the port, each worker serves it.

:mod:`service.gunicorn_conf` calls these; see :mod:`service.grpc.server` for why every
worker runs a gRPC server of its own.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from service.grpc.port import PORT_IN_USE, PortInUse, address, reserve, wanted_port
from service.settings import Settings

_held: list[socket.socket] = []
_GRACE_S = 5.0
"""Seconds running gRPC calls get to finish when a worker stops (HTTP has had its own)."""


def master_starting(server: Any, settings: Settings) -> None:
    """Hold the gRPC port before any worker forks; a busy port stops the start in one line."""
    if not settings.grpc or _held:
        return
    try:
        _held.append(reserve(settings))
    except PortInUse as exc:
        print(f"headstart: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(PORT_IN_USE)
    port = _held[0].getsockname()[1]
    server.log.info("gRPC at: %s (every worker)", address(settings.host, port))


def worker_started(worker: Any) -> None:
    """Start this worker's gRPC server over the app it has just loaded."""
    settings = Settings()  # the master has put the port it holds in the environment
    if not settings.grpc:
        return
    from service.grpc import server

    app = worker.wsgi.app  # service.front.Front around the Flask app
    worker.headstart_grpc = server.start(app, settings, wanted_port(settings))


def worker_exiting(worker: Any) -> None:
    """Stop this worker's gRPC server, giving running calls a few seconds."""
    running = getattr(worker, "headstart_grpc", None)
    if running is not None:
        running.stop(_GRACE_S)
