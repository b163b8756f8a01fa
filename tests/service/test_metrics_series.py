"""The series /metrics declares at start are the ones requests then count into."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from service import create_app
from service.settings import Settings


def _series(client: FlaskClient) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (s.name, frozenset(s.labels.items()))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_requests_count_into_the_declared_series(repository: Path) -> None:
    client = create_app(Settings(model_repository=repository)).test_client()
    declared = _series(client)
    for path in ("/v2/models/stats", "/v2/models/tiny-baseline/config", "/health/ready"):
        assert client.get(path).status_code == 200
    assert client.post("/v2/repository/index").status_code == 200
    assert _series(client) == declared  # nothing new: every label set was there already
    stats = frozenset({"endpoint": "/v2/models/stats", "model": "", "variant": ""}.items())
    assert ("headstart_request_duration_seconds_count", stats) in declared
