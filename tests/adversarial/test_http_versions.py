"""Request lines in HTTP versions the service does not speak."""

from __future__ import annotations

import pytest

from tests.adversarial.attacks import raw_request
from tests.adversarial.conftest import Server

pytestmark = pytest.mark.system


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/1.9"])
def test_an_unknown_http_1_version_is_505_in_http_1_1(server: Server, version: bytes) -> None:
    status, head, body = raw_request(
        server.url, b"GET /health/live " + version + b"\r\nHost: a\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 505 "), head
    assert status == 505
    assert b"is not supported" in body


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"HTTP/1.1"])
def test_http_1_0_and_1_1_are_answered(server: Server, version: bytes) -> None:
    status, head, _ = raw_request(
        server.url, b"GET /health/live " + version + b"\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert status == 200
    assert head.startswith((version + b" 200", b"HTTP/1.1 200")), head
