"""One gRPC server per gunicorn worker, beside its HTTP, over the worker's own app.

Why per worker and not one process of its own: a worker already holds the ONNX Runtime
sessions, the dynamic batcher, the experiment store and the metrics files, so gRPC requests
share them (and the batches) with HTTP instead of loading every model a second time, and
the service scales with ``workers`` for both protocols. The kernel balances connections
over the workers (``SO_REUSEPORT``, see :mod:`service.grpc.port`); a gRPC channel is one
long-lived connection, so one channel stays with one worker and clients that want every
worker open several channels.

gRPC's Python server runs calls on a thread pool of its own, of ``threads`` threads;
past ``threads + max_queue`` calls at once a call is refused with ``RESOURCE_EXHAUSTED``,
as HTTP answers 503. Messages over ``max_body_bytes`` are refused by gRPC itself, also with
``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from flask import Flask
from gevent import monkey
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service.grpc import metrics
from service.grpc.port import address
from service.grpc.servicer import InferenceServicer, add_to_server
from service.settings import Settings

log = logging.getLogger(__name__)


class _Executor(ThreadPoolExecutor):
    """A thread pool on the standard library's queue.

    The gevent worker patches ``queue.SimpleQueue`` into one that only greenlets of one
    thread may share; gRPC hands calls over from its own thread, so that queue would strand
    them (``LoopExit``). Threads themselves are left unpatched (see :mod:`service.worker`).
    """

    def __init__(self, threads: int) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="grpc")
        self._work_queue = monkey.get_original("queue", "SimpleQueue")()


@dataclass
class GrpcServer:
    """A started server, its health service, and the address it serves."""

    server: grpc.Server
    health: health.HealthServicer
    address: str

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls, and give running ones ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait(grace + 1.0)


def start(app: Flask, settings: Settings, port: int) -> GrpcServer:
    """Serve ``app``'s data plane over gRPC on ``settings.host:port``."""
    servicer = InferenceServicer(app)
    server = grpc.server(
        _Executor(settings.threads),
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ],
        maximum_concurrent_rpcs=settings.threads + settings.max_queue,
    )
    add_to_server(servicer, server)
    checks = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    where = address(settings.host, port)
    bound = server.add_insecure_port(where)
    if bound != port and port != 0:
        raise RuntimeError(f"gRPC could not bind {where}")
    server.start()
    ready = servicer.plane.store.not_ready_reason is None
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if ready
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", metrics.SERVICE):
        checks.set(service, status)
    metrics.declare({m: list(vs) for m, vs in servicer.plane.store.models.items()})
    log.info("gRPC serving at %s", address(settings.host, bound))
    return GrpcServer(server, checks, address(settings.host, bound))
