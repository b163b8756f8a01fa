"""The gunicorn worker class: gevent greenlets hold connections, :mod:`service.front` runs the app.

A thread-per-connection worker (gthread) lets a handful of clients that send their headers
or body slowly hold every thread, so nothing else, probes included, is answered until they
give up. Here each connection costs a greenlet while it is read, and only complete requests
reach the app: small inference requests on the event loop itself, the rest in the bounded
thread pool (:mod:`service.front`).

Threads stay real (gevent patches sockets, not ``threading``): the app runs in them, where
ONNX Runtime and the image decoders release the GIL and run in parallel with the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
from typing import Any

from gevent import monkey
from gunicorn import util
from gunicorn.http import body
from gunicorn.workers.ggevent import GeventWorker

from service.front import ChunkTooLarge, Front, Limits
from service.inline import INLINE_RULE
from service.settings import Settings


class ServiceWorker(GeventWorker):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's gevent worker with the app wrapped in :class:`service.front.Front`."""

    def patch(self) -> None:
        # As GeventWorker.patch, but with real threads for the pool the app runs in.
        monkey.patch_all(thread=False)
        # gunicorn answers what its parser refuses (400, 414, 431, 501) with an HTML page and
        # offers no hook for the body; its workers write it through this one function.
        util.write_error = write_json_error
        from gevent import socket

        self.sockets: list[Any] = [
            socket.socket(s.FAMILY, socket.SOCK_STREAM, fileno=s.sock.detach())
            for s in self.sockets
        ]

    def load_wsgi(self) -> None:
        _return_large_buffers_to_the_system()
        super().load_wsgi()
        settings = Settings()
        _refuse_chunks_over(settings.max_body_bytes)
        inline = getattr(self.wsgi, "extensions", {}).get(INLINE_RULE)
        self.wsgi: Any = Front(
            self.wsgi,
            Limits(
                threads=settings.threads,
                max_queue=settings.max_queue,
                request_timeout=settings.request_timeout,
                max_body_bytes=settings.max_body_bytes,
                keepalive_requests=settings.keepalive_requests,
                inline_budget=settings.inline_budget_ms / 1000.0,
                body_timeout=settings.body_timeout,
                min_body_rate=settings.min_body_rate,
                max_buffered_bytes=settings.max_buffered_bytes,
            ),
            inline,
        )

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        if tuple(req.version) not in _VERSIONS:
            # gunicorn takes any HTTP/1.x and would answer in that version's name.
            major, minor = req.version
            write_json_error(
                sock,
                505,
                "HTTP Version Not Supported",
                f"HTTP/{major}.{minor} is not supported; send HTTP/1.1 or HTTP/1.0",
            )
            raise StopIteration  # gunicorn's way to close the connection
        # gunicorn answers "100 Continue" as soon as it has the headers, before the front
        # could refuse the body (413 by its length, say); the front says it when it reads.
        req._expected_100_continue = False
        return super().handle_request(listener_name, req, sock, addr)


_VERSIONS = ((1, 0), (1, 1))


def _refuse_chunks_over(limit: int) -> None:
    """Have gunicorn's chunked reader raise :class:`ChunkTooLarge` for a chunk over ``limit``.

    It would otherwise wait for all of a chunk that declares, say, 2**64 bytes, and the front
    could only refuse the body once the bytes it counts went over.
    """
    parse = body.ChunkedReader.parse_chunk_size
    if getattr(parse, "headstart_limit", None) == limit:
        return
    original = getattr(parse, "headstart_original", parse)

    def parse_chunk_size(self: Any, unreader: Any, data: Any = None) -> Any:
        size, rest = original(self, unreader, data)
        if size > limit:
            raise ChunkTooLarge(size)
        return size, rest

    parse_chunk_size.headstart_limit = limit  # type: ignore[attr-defined]
    parse_chunk_size.headstart_original = original  # type: ignore[attr-defined]
    body.ChunkedReader.parse_chunk_size = parse_chunk_size


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error response (``util.write_error``) with a JSON body in the v1 shape.

    The request line may be what was refused, so the route, and with it the V2 shape, is
    unknown here.
    """
    code = reason.lower().replace(" ", "_")
    body = json.dumps({"error": {"code": code, "message": mesg or reason}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
_MMAP_THRESHOLD = 256 * 1024


def _return_large_buffers_to_the_system() -> None:
    """Give every buffer of 256 KiB or more its own mapping, unmapped when it is freed.

    glibc raises this threshold each time a large buffer is freed, up to 32 MiB, after which
    request bodies come from the heap and stay with the process: a worker that had served
    eight 15 MiB bodies at once kept 200 MiB instead of returning near its 90 MiB. A fixed
    threshold keeps it from moving. Other C libraries are left as they are.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
