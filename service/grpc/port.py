"""The gRPC port, settled in gunicorn's master before any worker starts.

Every worker runs its own gRPC server on the same port with ``SO_REUSEPORT``, and the
kernel spreads new connections over them. The master first binds the port alone, so a port
that anything else holds (another headstart included) stops the start with one line, then
keeps it open with ``SO_REUSEPORT`` set: the workers join it, and port 0 becomes one free
port that all of them share. This module never imports grpc: gRPC must not start in a
process that forks.
"""

from __future__ import annotations

import errno
import os
import socket

from service.settings import Settings

DEFAULT_PORT = 8001
"""Triton's and KServe's gRPC port."""

ENV = "HEADSTART_GRPC_PORT"
PORT_IN_USE = 75
"""The exit status ``headstart serve`` gives a busy port (see scripts/commands/serve.py)."""


def wanted_port(settings: Settings) -> int:
    """The configured gRPC port: ``grpc_port``, else the HTTP port plus one (8001 beside the
    default 8000, as Triton pairs them), or 0 (free) when ``port`` is 0 or the last one."""
    if settings.grpc_port is not None:
        return settings.grpc_port
    if settings.port in (0, 65535):
        return 0
    return settings.port + 1


def port_problem(settings: Settings) -> str | None:
    """Why the HTTP and gRPC ports cannot both be served, or None."""
    grpc = wanted_port(settings)
    if settings.grpc and grpc != 0 and grpc == settings.port:
        return (
            f"HTTP and gRPC cannot share port {grpc}: choose another gRPC port with "
            f"HEADSTART_GRPC_PORT={grpc + 1}, or leave it unset (the HTTP port plus one)"
        )
    return None


def address(host: str, port: int) -> str:
    """``host:port`` as gRPC writes it (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class PortInUse(RuntimeError):
    """The gRPC port is held by something else; the message says how to choose another."""


def reserve(settings: Settings) -> socket.socket:
    """Hold the gRPC port for this server's workers and put its number in the environment.

    Returns the socket, which must stay open while the server runs; raises
    :class:`PortInUse` when the port is taken.
    """
    host, port = settings.host, wanted_port(settings)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, where = infos[0]
    holder = socket.socket(family, kind, proto)
    try:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(where)  # alone first: fails if anyone holds the port
    except OSError as exc:
        holder.close()
        if exc.errno != errno.EADDRINUSE:
            raise PortInUse(f"cannot bind the gRPC port {host}:{port} ({exc.strerror})") from None
        other = next(p for p in range(port + 1, port + 100) if p != settings.port)
        raise PortInUse(
            f"gRPC port {port} on {host} is already in use; choose another with "
            f"HEADSTART_GRPC_PORT={other}, or turn gRPC off with HEADSTART_GRPC=false"
        ) from None
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # now the workers may join
    os.environ[ENV] = str(holder.getsockname()[1])
    return holder
