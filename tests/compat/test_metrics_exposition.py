"""/metrics as scrapers parse it: one content type, OpenMetrics on request, series from the start."""

from __future__ import annotations

import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text"
# What Prometheus 2 and 3 send.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
EMBED = {"endpoint": "/v1/models/<model>/embed", "model": "tiny", "variant": "pretrained"}


def _get(url: str, accept: str | None) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    response = requests.get(f"{url}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200
    assert len(response.raw.headers.getlist("Content-Type")) == 1
    return response


def test_text_format_has_one_well_formed_content_type(compat_server: str) -> None:
    for accept in (None, "*/*", "text/plain;version=0.0.4"):
        response = _get(compat_server, accept)
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert list(text_string_to_metric_families(response.text))


def test_openmetrics_on_request(compat_server: str) -> None:
    for accept in (OPENMETRICS, PROMETHEUS_ACCEPT):
        response = _get(compat_server, accept)
        media, *parameters = (p.strip() for p in response.headers["Content-Type"].split(";"))
        assert media == OPENMETRICS
        names = [p.split("=")[0] for p in parameters]
        assert len(names) == len(set(names)), parameters
        assert response.text.endswith("# EOF\n")
        families = {f.name: f for f in openmetrics_families(response.text)}
        assert "headstart_requests" in families


def test_known_series_exist_before_their_first_request(compat_server: str) -> None:
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(_get(compat_server, None).text)
        for s in family.samples
    }
    # No test of this suite calls embed: its series are there, at zero.
    assert samples[("headstart_requests_total", frozenset({**EMBED, "status": "200"}.items()))] == 0
    assert samples[("headstart_request_duration_seconds_count", frozenset(EMBED.items()))] == 0
    assert samples[("headstart_images_total", frozenset(EMBED.items()))] == 0
    for outcome in ("success", "failure"):
        labels = frozenset({"model": "tiny", "variant": "baseline", "outcome": outcome}.items())
        assert ("headstart_inference_requests_total", labels) in samples
