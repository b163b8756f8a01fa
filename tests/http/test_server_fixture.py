"""The real gunicorn command comes up, answers, logs request ids and stops."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path


def test_live_server_answers_liveness(live_server: str) -> None:
    with urllib.request.urlopen(f"{live_server}/health/live", timeout=5) as response:
        assert response.status == 200
        assert json.load(response) == {"status": "live"}


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers)


def test_request_id_is_echoed_and_logged(live_server: str, live_server_log: Path) -> None:
    status, headers = _get(f"{live_server}/health/live", {"X-Request-ID": "trace-42.a"})
    assert status == 200
    assert headers["X-Request-ID"] == "trace-42.a"
    _, generated = _get(f"{live_server}/health/ready")
    assert len(generated["X-Request-ID"]) == 32
    # The worker writes its access line after the response; give it a moment.
    for _ in range(50):
        text = live_server_log.read_text()
        if "request_id=trace-42.a" in text and generated["X-Request-ID"] in text:
            break
        time.sleep(0.05)
    assert '"GET /health/live HTTP/1.1" 200' in text
    assert "request_id=trace-42.a" in text
    assert f"request_id={generated['X-Request-ID']}" in text


def test_unsafe_request_id_is_replaced(live_server: str) -> None:
    _, headers = _get(f"{live_server}/health/live", {"X-Request-ID": 'a b"c'})
    assert headers["X-Request-ID"] != 'a b"c'
    assert len(headers["X-Request-ID"]) == 32


def test_service_log_lines_reach_the_server_log(live_server: str, live_server_log: Path) -> None:
    assert (
        "[INFO] loaded model tiny (variants: pretrained, baseline)" in live_server_log.read_text()
    )
