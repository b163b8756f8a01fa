"""Talk to a served container (or its stand-in) over loopback: readiness, images, draining."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request

import numpy as np
from PIL import Image


def wait_ready(url: str, timeout: float = 60) -> dict[str, object]:
    """The body of ``/health/ready`` once it answers 200; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as response:
                body: dict[str, object] = json.load(response)
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def png(pixels: np.ndarray) -> bytes:
    """A grey-scale PNG of ``pixels``."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-headers: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def answers(host: str, port: int, timeout: float) -> bool:
    """Whether a new connection gets an answer to GET /health/live within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            return bool(sock.recv(1))
    except OSError:  # refused, reset or timed out: nobody takes new requests
        return False


def hold_request(host: str, port: int, target: str, body: bytes) -> socket.socket:
    """Open a POST of ``body`` to ``target`` and hold the body back once a worker has it.

    gunicorn's "100 Continue" proves a worker thread holds the request; the caller sends
    ``body`` when it chooses (e.g. after the server was told to stop) and reads the answer.
    """
    sock = socket.create_connection((host, port), timeout=30)
    head = (
        f"POST {target} HTTP/1.1\r\nHost: probe\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    sock.sendall(head.encode("ascii"))
    interim = b""
    while b"\r\n\r\n" not in interim:
        chunk = sock.recv(64)
        assert chunk, f"closed before 100 Continue: {interim!r}"
        interim += chunk
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    return sock
