"""A real Prometheus server (Debian's package) scraping the real service over loopback."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.images import mnist, png
from tests.system import require

pytestmark = pytest.mark.system

EMBED = (
    'headstart_requests_total{endpoint="/v1/models/<model>/embed",'
    'model="tiny",variant="pretrained",status="200"}'
)
CLASSIFY = (
    'headstart_requests_total{endpoint="/v1/models/<model>/classify",'
    'model="tiny",variant="baseline",status="200"}'
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def prometheus(compat_server: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Prometheus scraping the service every second; yields its URL and its log."""
    binary = require("prometheus", "prometheus")
    target = compat_server.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: headstart\n    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    port = _free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=debug",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=20)


def _api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def _until(check: Any, timeout: float = 40.0) -> Any:
    """Poll ``check`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    return check()


def _value(base: str, query: str) -> float | None:
    result = _api(base, "query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def _workers(log: Path, marker: str) -> set[str]:
    return set(re.findall(rf"request_id={marker}-\d+ worker=(<\d+>)", log.read_text()))


def test_prometheus_scrapes_every_worker_without_complaint(
    prometheus: tuple[str, Path], compat_server: str, compat_log: Path
) -> None:
    base, log = prometheus

    def target() -> dict[str, Any] | None:
        active = _api(base, "targets")["activeTargets"]
        return active[0] if active and active[0]["health"] == "up" else None

    up = _until(target)
    assert up, f"target never up: {_api(base, 'targets')}\n{log.read_text()[-3000:]}"
    assert up["lastError"] == ""
    # Declared at start: the series are there before their first request (no test of this
    # suite calls embed, so its count is still zero).
    assert _until(lambda: _value(base, CLASSIFY) is not None)
    assert _value(base, EMBED) == 0
    before = _value(base, CLASSIFY)
    images = 'headstart_images_total{endpoint="/v1/models/<model>/classify",variant="baseline"}'
    images_before = _value(base, images)
    assert before is not None
    assert images_before is not None

    image = base64.b64encode(png(mnist()[0][0])).decode()
    sent = 0
    while sent < 10 or (len(_workers(compat_log, "prom")) < 2 and sent < 200):
        response = requests.post(
            f"{compat_server}/v1/models/tiny/classify?variant=baseline",
            json={"images": [image]},
            headers={"X-Request-ID": f"prom-{sent}", "Connection": "close"},
            timeout=5,
        )
        assert response.status_code == 200
        sent += 1
    assert len(_workers(compat_log, "prom")) == 2
    assert _until(lambda: _value(base, CLASSIFY) == before + sent), (before, sent)
    assert _value(base, images) == images_before + sent
    assert _value(base, 'up{job="headstart"}') == 1
    text = log.read_text()
    assert "Invalid content type" not in text
    assert "duplicate parameter" not in text
    assert "level=error" not in text
