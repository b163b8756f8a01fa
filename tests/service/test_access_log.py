"""The service's access line is the one gunicorn's generic formatter would write."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from service.access_log import FORMAT, AccessLogger


@dataclass
class FakeResponse:
    """The attributes gunicorn's ``Response`` gives a logger."""

    status: Any = "200 OK"
    sent: int | None = 412
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "application/json"), ("X-Request-ID", "abc-1")]
    )


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _logger(access_format: str) -> tuple[AccessLogger, Capture]:
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", access_format)
    logger = AccessLogger(cfg)
    capture = Capture()
    logger.access_log.handlers = [capture]
    return logger, capture


def _environ(**extra: str) -> dict[str, str]:
    return {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/v1/models/mnist/classify?top_k=3",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "curl/8.5",
        **extra,
    }


CASES = {
    "plain": (FakeResponse(), _environ()),
    "quotes in the agent and the path": (
        FakeResponse(),
        _environ(HTTP_USER_AGENT='say "hi"', RAW_URI='/v1/"x"'),
    ),
    "no request id, no agent, nothing sent": (
        FakeResponse(status="404 NOT FOUND", sent=None, headers=[]),
        {k: v for k, v in _environ().items() if k != "HTTP_USER_AGENT"},
    ),
    "integer status, no client address": (
        FakeResponse(status=503),
        {k: v for k, v in _environ().items() if k != "REMOTE_ADDR"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_line_equals_gunicorns(case: str) -> None:
    response, environ = CASES[case]
    took = timedelta(seconds=1, microseconds=234_567)
    logger, capture = _logger(FORMAT)
    logger.access(response, None, environ, took)
    Logger.access(logger, response, [], environ, took)  # gunicorn's generic formatter
    fast, generic = capture.lines
    assert fast == generic
    assert "1234ms" in fast


def test_other_formats_go_to_gunicorn() -> None:
    logger, capture = _logger("%(h)s %({x-request-id}o)s %({content-type}i)s")
    logger.access(FakeResponse(), [("CONTENT-TYPE", "image/png")], _environ(), timedelta())
    assert capture.lines == ["127.0.0.1 abc-1 image/png"]


def test_access_log_off_writes_nothing() -> None:
    cfg = Config()
    cfg.set("access_log_format", FORMAT)
    logger = AccessLogger(cfg)
    capture = Capture()
    logger.access_log.handlers = [capture]
    logger.access(FakeResponse(), None, _environ(), timedelta())
    assert capture.lines == []
