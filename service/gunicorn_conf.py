"""gunicorn configuration, read from :class:`service.settings.Settings`.

The one command line, used verbatim by ``headstart serve``, the container and the benchmark::

    gunicorn --config python:service.gunicorn_conf 'service:create_app()'

Everything else comes from ``HEADSTART_*`` environment variables. The app is not
preloaded: each worker creates its own ONNX Runtime sessions after the fork.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# prometheus-client picks its storage when first imported, so the multiprocess
# directory must be in the environment before anything imports it; the workers
# inherit it from this master process.
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWN_METRICS_DIR = _METRICS_ENV not in os.environ
_MASTER = os.getpid()
if _OWN_METRICS_DIR:
    os.environ[_METRICS_ENV] = tempfile.mkdtemp(prefix="headstart-metrics-")


# The workers pass loads and unloads on to each other through a folder they share.
_CONTROL_ENV = "HEADSTART_CONTROL_DIRECTORY"
_OWN_CONTROL_DIR = _CONTROL_ENV not in os.environ
if _OWN_CONTROL_DIR:
    os.environ[_CONTROL_ENV] = tempfile.mkdtemp(prefix="headstart-control-")


def _remove_own_folders() -> None:
    """Remove the metrics and control folders this master made; forked workers leave them."""
    if os.getpid() != _MASTER:
        return
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ[_METRICS_ENV], ignore_errors=True)
    if _OWN_CONTROL_DIR:
        shutil.rmtree(os.environ[_CONTROL_ENV], ignore_errors=True)


# gunicorn calls on_exit only after a clean run; when it cannot bind its address it exits
# straight away, and this hook is what still removes the directory.
atexit.register(_remove_own_folders)

# ONNX Runtime's telemetry writes a session file into the temp dir at import and would try to
# report usage; a service answers its clients and nobody else.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# The libraries every worker needs, imported once here so that a worker forked to replace
# one that died serves within a second instead of two or more on a busy machine (their import
# is most of a worker's start). No session is opened here: the app, with its ONNX Runtime
# sessions and their thread pools, is still created in each worker after the fork. numpy's
# OpenBLAS starts threads at import; it is fork-safe (fork handlers stop them and the child
# starts its own on first use).
import flask  # noqa: F401
import numpy  # noqa: F401
import onnxruntime  # noqa: F401
import PIL.Image  # noqa: F401
import pydantic  # noqa: F401

from service import (
    access_log,  # after the environment set-up above, on purpose
    live_repository,
)
from service.grpc import lifecycle as grpc_lifecycle  # holds the port; never imports grpc
from service.grpc import port as grpc_port
from service.server_command import repository_problem
from service.settings import Settings

_settings = Settings()

# Every launch path refuses a repository with nothing to serve, in the one line
# `headstart serve` prints, instead of workers that start and are never ready.
_problem = repository_problem(_settings.model_repository) or grpc_port.port_problem(_settings)
if _problem is not None:
    raise SystemExit(f"headstart: error: {_problem}")

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "service.worker.ServiceWorker"
worker_connections = _settings.max_connections
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = 5
loglevel = _settings.log_level.lower()
errorlog = "-"
accesslog = "-"
access_log_format = access_log.FORMAT
logger_class = access_log.AccessLogger
proc_name = "headstart"
# Worker heartbeats in memory: a disk-backed /tmp (common in containers) can stall them.
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"
# No runtime control socket: it would be one fixed path shared by every server on the host.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Start from empty metrics (files left by an earlier run would be summed in) and no
    earlier run's loads and unloads: a new server serves the repository as it is on disk.
    Hold the gRPC port that every worker will serve."""
    directory = Path(os.environ[_METRICS_ENV])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    # A new server serves the repository as it is on disk: no earlier run's loads or unloads.
    live_repository.reset(Path(os.environ[_CONTROL_ENV]))
    grpc_lifecycle.master_starting(server, _settings)


def post_fork(server: Any, worker: Any) -> None:
    """Send the service's log lines (models loaded, entries skipped) to gunicorn's error log."""
    service_log = logging.getLogger("service")
    service_log.handlers = list(server.log.error_log.handlers)
    service_log.setLevel(_settings.log_level)
    service_log.propagate = False
    # No log format here names the calling function, thread or multiprocessing process, so
    # the logging module need not look them up for every access line (its documented
    # optimisation switches); the process id stays, as gunicorn's error format prints it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def post_worker_init(worker: Any) -> None:
    """Start what the worker runs beside its requests (the repository watcher, the
    experiments' policy); serve gRPC from this worker too, over the app it has just loaded."""
    from service.app import start_background

    start_background(worker.wsgi.app)  # worker.wsgi: the front around the app
    grpc_lifecycle.worker_started(worker)


def worker_exit(server: Any, worker: Any) -> None:
    """Stop this worker's gRPC server."""
    grpc_lifecycle.worker_exiting(worker)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live-only metrics so they are not reported forever."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics and control folders this master created."""
    _remove_own_folders()
