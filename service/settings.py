"""Typed settings for everything headstart reads from the environment (prefix ``HEADSTART_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings, each overridable by ``HEADSTART_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="HEADSTART_", protected_namespaces=())

    model_repository: Path = Path("model_repository")
    """Root of the model repository: ``<root>/<model>/<variant>/{model.onnx, manifest.json}``."""

    host: str = "127.0.0.1"
    """Address gunicorn binds to: loopback unless told otherwise (the container image sets
    ``0.0.0.0``, as its port is published on purpose)."""

    port: int = Field(default=8000, ge=0, le=65535)
    """Port gunicorn binds to; 0 lets the system pick a free one (gunicorn logs which)."""

    grpc: bool = True
    """Serve the Open Inference Protocol over gRPC as well, on ``grpc_port`` of ``host``."""

    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the gRPC service; unset: ``port`` plus one (8001 beside 8000), or a free one
    when ``port`` is 0 (the log says which). Every worker serves it (``SO_REUSEPORT``), so one
    channel stays with one worker."""

    workers: int = Field(default=2, ge=1)
    """gunicorn worker processes; each holds its own ONNX Runtime sessions."""

    threads: int = Field(default=4, ge=1)
    """Threads per worker that run the requests its event loop does not (bodies over 64 KiB,
    routes over ``inline_budget_ms``, routed requests on PostgreSQL, everything but
    inference); connections themselves are greenlets, so slow clients never hold one."""

    max_connections: int = Field(default=1000, ge=1)
    """Open connections per worker (gunicorn's ``worker_connections``); past it, connections
    wait in the listen backlog."""

    max_queue: int = Field(default=64, ge=0)
    """Requests per worker that may wait for a free thread; past it a request gets 503 with
    ``Retry-After`` at once instead of a growing wait. Reconnecting clients spread unevenly
    over the workers for a while, so this is sized for a whole client pool on one worker: at
    16, 32 connections to the CNN default met 503 on most requests."""

    inline_budget_ms: float = Field(default=2.0, ge=0.0)
    """Single inference requests (dynamic batching off; on PostgreSQL, not routed through an
    experiment) run on the worker's event loop, without the hand-off to a thread, while their route's
    recent requests took at most this many milliseconds of CPU; costlier ones go to the
    threads. 0 sends every request to the threads."""

    keepalive_requests: int = Field(default=100, ge=1)
    """Responses one kept-alive connection carries before the server closes it, so clients
    reconnect and their connections spread over the workers."""

    request_timeout: float = Field(default=20.0, gt=0)
    """Seconds a request may take before it is answered 504 and its connection freed; keep it
    under ``timeout``."""

    ort_threads: int = Field(default=1, ge=1)
    """ONNX Runtime intra-op threads per session; keep workers x ort_threads <= cores."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413 and their connection is closed
    without reading the rest."""

    max_buffered_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Most request-body bytes one worker holds at once (bodies being read, and those of
    requests not done yet); a body that would go over gets 503 with ``Retry-After`` and its
    connection is closed."""

    body_timeout: float = Field(default=10.0, gt=0)
    """Seconds a request body may pause; one that stalls longer gets 408 and its connection
    is closed, so a client that stops halfway holds no buffer."""

    min_body_rate: float = Field(default=16 * 1024.0, gt=0)
    """Slowest average rate, in bytes a second, a request body may arrive at once its first
    ``body_timeout`` seconds are over; slower ones get 408 (a 16 MiB body may take 17 min)."""

    max_image_pixels: int = Field(default=16_000_000, ge=1)
    """Largest decoded image (width x height); larger ones, decompression bombs included, get 413."""

    max_request_pixels: int = Field(default=64_000_000, ge=1)
    """Most pixels the images of one request may declare together (four images at the
    per-image limit); a request over it gets 413 before its images are decoded."""

    max_batch: int = Field(default=256, ge=1)
    """Most images in one request."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Level of the service's and gunicorn's logs."""

    timeout: int = Field(default=30, ge=1)
    """Seconds a worker's event loop may go silent before gunicorn restarts the worker."""

    graceful_timeout: int = Field(default=30, ge=1)
    """Seconds in-flight requests get to finish after SIGTERM."""

    batch_max_size: int = Field(default=1, ge=1)
    """Most images one worker runs in one ONNX Runtime call by merging concurrent requests;
    1 turns dynamic batching off."""

    batch_max_wait_ms: float = Field(default=0.0, ge=0.0, le=1000.0)
    """How long a batch waits for more requests before it runs; 0 batches only the requests
    that queued while the previous batch ran."""

    repository_poll_seconds: float = Field(default=0.0, ge=0.0)
    """Look at the model repository's files this often and load every variant that changed or
    appeared (a variant whose folder is gone is unloaded), as Triton's poll mode does; 0 never
    looks: the repository changes only through the load and unload routes."""

    control_directory: Path | None = None
    """Folder the workers of one server share to pass on loads and unloads; ``headstart
    serve`` makes a temporary one when this is unset."""

    state_directory: Path = Path("state")
    """Where the service keeps its SQLite database when ``database_url`` is not set."""

    database_url: str | None = None
    """SQLAlchemy URL of the experiments database, e.g.
    ``postgresql+psycopg://user:password@db/headstart``; unset: SQLite in ``state_directory``."""

    admin_token: SecretStr | None = None
    """Bearer token of the experiment admin routes; unset turns them off (403)."""

    feedback_token: SecretStr | None = None
    """Bearer token of ``POST /v1/feedback`` (the admin token works too); unset with no admin
    token turns feedback off (403)."""

    policy_interval_seconds: float = Field(default=10.0, ge=0.0)
    """How often each worker applies the automatic policy of the running experiments that
    declare one (promote a winner, roll back a harmful challenger); 0 never does."""

    shadow_threads: int = Field(default=2, ge=1)
    """Threads per worker that run shadow arms off the response path."""
