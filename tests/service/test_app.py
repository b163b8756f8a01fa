"""The app factory and what it wires in, through Flask's test client (one process)."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from service.app import create_app
from service.settings import Settings
from tests.images import mnist, png


def _client(repository: Path) -> FlaskClient:
    return create_app(Settings(model_repository=repository)).test_client()


def test_factory_loads_the_repository(repository: Path) -> None:
    response = _client(repository).get("/health/ready")
    assert response.status_code == 200
    assert response.json == {"status": "ready", "models": ["tiny"], "unavailable": []}


def test_every_response_has_a_request_id(repository: Path) -> None:
    client = _client(repository)
    assert client.get("/nowhere").headers["X-Request-ID"]
    echoed = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    error = client.post("/v1/models/x/classify", headers={"X-Request-ID": "e-1"})
    assert error.status_code == 404
    assert error.headers["X-Request-ID"] == "e-1"


def test_single_process_metrics_count_requests(repository: Path) -> None:
    client = _client(repository)
    labels = 'endpoint="/v1/models/<model>/embed",model="tiny",variant="pretrained"'

    def images_so_far() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(f"headstart_images_total{{{labels}}}"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = images_so_far()
    data = png(mnist()[0][0])
    response = client.post("/v1/models/tiny/embed", data=data, content_type="image/png")
    assert response.status_code == 200
    assert images_so_far() == before + 1
