"""Prometheus metrics from the real server: per endpoint, model and variant, over all workers."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.images import mnist, png


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


CLASSIFY = {"endpoint": "/v1/models/<model>/classify", "model": "tiny", "variant": "baseline"}
COMPARE = {"endpoint": "/v1/models/<model>/compare", "model": "tiny", "variant": "both"}


def _workers_that_served(log: Path, marker: str) -> set[str]:
    return set(re.findall(rf"request_id={marker}-\d+ worker=(<\d+>)", log.read_text()))


def test_counts_are_summed_across_workers(live_server: str, live_server_log: Path) -> None:
    image = base64.b64encode(png(mnist()[0][0])).decode()
    before = _samples(live_server)
    # A new connection per request, until the access log shows both workers took some.
    sent = 0
    while sent < 12 or (len(_workers_that_served(live_server_log, "sum")) < 2 and sent < 200):
        r = requests.post(
            f"{live_server}/v1/models/tiny/classify?variant=baseline",
            json={"images": [image, image]},
            headers={"X-Request-ID": f"sum-{sent}"},
            timeout=5,
        )
        assert r.status_code == 200
        sent += 1
    assert len(_workers_that_served(live_server_log, "sum")) == 2
    for _ in range(3):
        r = requests.post(
            f"{live_server}/v1/models/tiny/compare", json={"images": [image] * 3}, timeout=5
        )
        assert r.status_code == 200
    bad = requests.post(
        f"{live_server}/v1/models/tiny/classify?variant=baseline",
        json={"images": ["@@"]},
        timeout=5,
    )
    assert bad.status_code == 400
    # Every scrape, whichever worker answers it, must see every worker's requests.
    for _ in range(4):
        after = _samples(live_server)
        ok = _value(after, "headstart_requests_total", **CLASSIFY, status="200")
        assert ok - _value(before, "headstart_requests_total", **CLASSIFY, status="200") == sent
        images = _value(after, "headstart_images_total", **CLASSIFY)
        assert images - _value(before, "headstart_images_total", **CLASSIFY) == 2 * sent
        compared = _value(after, "headstart_images_total", **COMPARE)
        assert compared - _value(before, "headstart_images_total", **COMPARE) == 9
        errors = _value(after, "headstart_request_errors_total", **CLASSIFY, code="bad_request")
        assert (
            errors
            - _value(before, "headstart_request_errors_total", **CLASSIFY, code="bad_request")
            == 1
        )
        count = _value(after, "headstart_request_duration_seconds_count", **CLASSIFY)
        assert (
            count - _value(before, "headstart_request_duration_seconds_count", **CLASSIFY)
            == sent + 1
        )


def test_unknown_names_do_not_become_label_values(live_server: str) -> None:
    for name in ("a1", "b2", "c3"):
        r = requests.post(
            f"{live_server}/v1/models/{name}/classify", json={"images": ["AA=="]}, timeout=5
        )
        assert r.status_code == 404
    text = requests.get(f"{live_server}/metrics", timeout=5).text
    assert not re.search(r'model="(a1|b2|c3)"', text)
    assert 'model="unknown"' in text
